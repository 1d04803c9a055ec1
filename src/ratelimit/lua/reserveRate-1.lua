--[[
  Checks and debits the three buckets of one scope (requests, input tokens,
  output tokens) together: all or nothing. The clock is Redis TIME, so the
  clients' clocks never matter. Same arithmetic as src/ratelimit/bucketMath.ts.

  A call is admitted when every limited bucket holds min(need, capacity), or will
  within the horizon: then it is booked, the levels go into debt now and the
  caller starts after `wait`. An absent hash is a full one (it expires only once
  it would have refilled completely).

  Input:
    KEYS[1]      scope hash (<prefix>:ratelimit:<model>[/<tier>]), fields ts, l1, l2, l3
    ARGV[1]      horizon, ms: the longest wait that is booked rather than refused
    ARGV[2..4]   capacity of requests, input tokens, output tokens (0 = no limit)
    ARGV[5..7]   refill per ms of each
    ARGV[8..10]  need of each

  Output:
    { admitted (1 | 0), wait ms (string), Redis now ms (string) }
]]
--- @include "includes/clock"
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
local level, ts = refill(redis.call("HMGET", KEYS[1], "ts", "l1", "l2", "l3"), cap, rate, now)

local base = math.max(0, ts - now)
local wait = base
for j = 1, 3 do
  if cap[j] > 0 and need[j] > 0 then
    local target = math.min(need[j], cap[j])
    if level[j] < target then wait = math.max(wait, base + (target - level[j]) / rate[j]) end
  end
end
if wait > horizon then
  return { 0, string.format("%.3f", wait), string.format("%.3f", now) }
end

for j = 1, 3 do
  if cap[j] > 0 then level[j] = level[j] - need[j] end
end
storeBuckets(KEYS[1], ts, level, cap, rate, now)
return { 1, string.format("%.3f", wait), string.format("%.3f", now) }
