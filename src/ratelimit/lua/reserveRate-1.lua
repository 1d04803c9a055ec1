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

  Input:
    KEYS[1]      scope hash (<prefix>:ratelimit:<model>[/<tier>]), fields ts, l1..l3, c1..c3, r1..r3
    ARGV[1]      horizon, ms: the longest wait that is booked rather than refused
    ARGV[2..4]   capacity of requests, input tokens, output tokens (0 = no limit)
    ARGV[5..7]   refill per ms of each
    ARGV[8..10]  need of each

  Output:
    { admitted (1 | 0), wait ms (string), Redis now ms (string) }
    refused: the wait is the horizon plus the time until the call could be booked
]]
--- @include "includes/clock"
--- @include "includes/effective"
--- @include "includes/refill"
--- @include "includes/store"

local now = redisNowMs()
local horizon = tonumber(ARGV[1])
local cap, rate, need = {}, {}, {}
for j = 1, 3 do
  cap[j] = tonumber(ARGV[1 + j])
  rate[j] = tonumber(ARGV[4 + j])
  need[j] = tonumber(ARGV[7 + j])
end
local level, ts = refill(loadBuckets(KEYS[1], cap, rate), cap, rate, now)

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
return { 1, string.format("%.3f", wait), string.format("%.3f", now) }
