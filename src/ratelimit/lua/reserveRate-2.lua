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

  A settle may ride along (one round trip instead of two): it is applied first,
  as settleRate-2.lua applies it, whether the call is then admitted or not.
  The model's usage window (includes/usage) gets the need of an admitted call
  and the folded settle's actual − reserved.

  Input:
    KEYS[1]      scope hash (<prefix>:ratelimit:<model>[/<tier>]), fields ts, l1..l3, c1..c3, r1..r3
    KEYS[2]      the model's usage hash (<prefix>:ratelimit-used:<model>)
    ARGV[1]      horizon, ms: the longest wait that is booked rather than refused
    ARGV[2..4]   capacity of requests, input tokens, output tokens (0 = no limit)
    ARGV[5..7]   refill per ms of each
    ARGV[8..10]  need of each
    ARGV[11]     usage window, ms (0: usage not recorded, KEYS[2] untouched)
    ARGV[12..20] optional, a folded settle: delta of each (actual − reserved, charged to the buckets), the
                 provider's remaining of each (-1 when not reported), actual − reserved for the usage window

  Output:
    { admitted (1 | 0), wait ms (string), Redis now ms (string) }
    refused: the wait is the horizon plus the time until the call could be booked
]]
--- @include "includes/clock"
--- @include "includes/effective"
--- @include "includes/refill"
--- @include "includes/store"
--- @include "includes/usage"

local now = redisNowMs()
local horizon = tonumber(ARGV[1])
local cap, rate, need = {}, {}, {}
for j = 1, 3 do
  cap[j] = tonumber(ARGV[1 + j])
  rate[j] = tonumber(ARGV[4 + j])
  need[j] = tonumber(ARGV[7 + j])
end
local level, ts = refill(loadBuckets(KEYS[1], cap, rate), cap, rate, now)
local windowMs = tonumber(ARGV[11])
local settled = #ARGV >= 20
local used = { 0, 0, 0 }
if settled then
  for j = 1, 3 do
    if cap[j] > 0 then
      local l = math.min(cap[j], level[j] - tonumber(ARGV[11 + j]))
      local remaining = tonumber(ARGV[14 + j])
      if remaining >= 0 then l = math.min(l, remaining) end
      level[j] = l
    end
    used[j] = tonumber(ARGV[17 + j])
  end
end

local base = math.max(0, ts - now)
local wait = base
local excess = 0
for j = 1, 3 do
  if cap[j] > 0 and need[j] > 0 then
    if level[j] < need[j] then wait = math.max(wait, base + (need[j] - level[j]) / rate[j]) end
    if need[j] > cap[j] then excess = math.max(excess, (need[j] - cap[j]) / rate[j]) end
  end
end
if wait > horizon + excess then
  if settled then
    storeBuckets(KEYS[1], ts, level, cap, rate, now)
    if windowMs > 0 then addToUsage(KEYS[2], now, windowMs, used) end
  end
  return { 0, string.format("%.3f", wait - excess), string.format("%.3f", now) }
end

-- charge() of bucketMath.ts: the need, the excess once more, and the refill the bucket could not have held by the start.
local refilling = math.max(0, wait - base)
for j = 1, 3 do
  if cap[j] > 0 then
    local n = need[j]
    local take = n + math.max(0, n - cap[j]) + math.max(0, level[j] + rate[j] * refilling - math.max(cap[j], n))
    level[j] = level[j] - take
  end
end
storeBuckets(KEYS[1], ts, level, cap, rate, now)
if windowMs > 0 then addToUsage(KEYS[2], now, windowMs, { used[1] + need[1], used[2] + need[2], used[3] + need[3] }) end
return { 1, string.format("%.3f", wait), string.format("%.3f", now) }
