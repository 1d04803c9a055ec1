--[[
  Checks and debits the three buckets of one scope (requests, input tokens,
  output tokens) together: all or nothing. The clock is Redis TIME, so the
  clients' clocks never matter. Same arithmetic as src/ratelimit/bucketMath.ts.

  A call is admitted when every limited bucket holds its need, or will within
  the horizon: then it is booked, the levels go into debt now and the caller
  starts after `wait`; no window then admits more than capacity + refill x
  window. A need N above a bucket's capacity C adds the refill of the excess to
  the horizon: the call starts once the refill reaches N and is charged
  N + (N - C), a debt of N - C behind it, so neither the window before it nor
  the one after it holds more than that bound. A call kept waiting by one bucket
  forfeits the refill the others could not have held by its start. An absent hash is a full one (it expires only once it would
  have refilled completely); a bucket the caller has no limit for is held to the
  shape another caller stored (includes/effective).

  Several calls of the scope may be reserved in one round trip, in their queue
  order: each exactly as if reserved alone at the same instant, and the first
  that is refused ends the list (those behind it are not looked at, so none
  overtakes it).

  A settle may ride along (one round trip instead of two): it is applied first,
  as settleRate-2.lua applies it, whether the calls are then admitted or not.
  The model's usage window (includes/usage) gets the needs of the admitted calls
  and the folded settle's actual − reserved.

  Input:
    KEYS[1]      scope hash (<prefix>:ratelimit:<model>[/<tier>]), fields ts, l1..l3, c1..c3, r1..r3
    KEYS[2]      the model's usage hash (<prefix>:ratelimit-used:<model>)
    ARGV[1]      horizon, ms: the longest wait that is booked rather than refused
    ARGV[2..4]   capacity of requests, input tokens, output tokens (0 = no limit)
    ARGV[5..7]   refill per ms of each
    ARGV[8]      usage window, ms (0: usage not recorded, KEYS[2] untouched)
    ARGV[9]      1 when a settle is folded in, else 0
    ARGV[10..18] the folded settle (zeros when none): delta of each (actual − reserved, charged to the
                 buckets), the provider's remaining of each (-1 when not reported), actual − reserved for
                 the usage window
    ARGV[19..]   the needs of the calls, in queue order, three each (requests, input tokens, output tokens)

  Output:
    { Redis now ms (string), then per call looked at: admitted (1 | 0), wait ms (string) }
    admitted: the call starts after its wait; refused (always the last): the wait is the horizon plus the
    time until it could be booked
]]
--- @include "includes/clock"
--- @include "includes/effective"
--- @include "includes/refill"
--- @include "includes/store"
--- @include "includes/usage"

local now = redisNowMs()
local horizon = tonumber(ARGV[1])
local cap, rate = {}, {}
for j = 1, 3 do
  cap[j] = tonumber(ARGV[1 + j])
  rate[j] = tonumber(ARGV[4 + j])
end
local level, ts = refill(loadBuckets(KEYS[1], cap, rate), cap, rate, now)
local windowMs = tonumber(ARGV[8])
local settled = ARGV[9] == "1"
local used = { 0, 0, 0 }
if settled then
  for j = 1, 3 do
    if cap[j] > 0 then
      local l = math.min(cap[j], level[j] - tonumber(ARGV[9 + j]))
      local remaining = tonumber(ARGV[12 + j])
      if remaining >= 0 then l = math.min(l, remaining) end
      level[j] = l
    end
    used[j] = tonumber(ARGV[15 + j])
  end
end

local out = { string.format("%.3f", now) }
local admitted = 0
local base = math.max(0, ts - now)
for first = 19, #ARGV, 3 do
  local need = { tonumber(ARGV[first]), tonumber(ARGV[first + 1]), tonumber(ARGV[first + 2]) }
  local wait = base
  local excess = 0
  for j = 1, 3 do
    if cap[j] > 0 and need[j] > 0 then
      if level[j] < need[j] then wait = math.max(wait, base + (need[j] - level[j]) / rate[j]) end
      if need[j] > cap[j] then excess = math.max(excess, (need[j] - cap[j]) / rate[j]) end
    end
  end
  if wait > horizon + excess then
    table.insert(out, 0)
    table.insert(out, string.format("%.3f", wait - excess))
    break
  end
  -- charge() of bucketMath.ts: the need, the excess once more, and the refill the bucket could not have held by the start.
  local refilling = math.max(0, wait - base)
  for j = 1, 3 do
    if cap[j] > 0 then
      local n = need[j]
      local take = n + math.max(0, n - cap[j]) + math.max(0, level[j] + rate[j] * refilling - math.max(cap[j], n))
      level[j] = level[j] - take
    end
    used[j] = used[j] + need[j]
  end
  admitted = admitted + 1
  table.insert(out, 1)
  table.insert(out, string.format("%.3f", wait))
end

if admitted > 0 or settled then
  storeBuckets(KEYS[1], ts, level, cap, rate, now)
  if windowMs > 0 then addToUsage(KEYS[2], now, windowMs, used) end
end
return out
