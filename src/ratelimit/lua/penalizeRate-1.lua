--[[
  A provider 429: drains the scope until the time the provider named, cluster-wide.
  Nothing is admitted before now + delay, and the limited buckets restart empty
  then, so callers come back at the refill rate rather than all at once.
  Same arithmetic as src/ratelimit/bucketMath.ts.

  Input:
    KEYS[1]     scope hash (<prefix>:ratelimit:<model>[/<tier>])
    ARGV[1]     delay, ms (the provider's retry-after)
    ARGV[2..4]  capacity of requests, input tokens, output tokens (0 = no limit)
    ARGV[5..7]  refill per ms of each

  Output:
    1  penalty applied (or extended)
    0  a longer penalty was already in force
]]
--- @include "includes/clock"
--- @include "includes/effective"
--- @include "includes/refill"
--- @include "includes/store"

local now = redisNowMs()
local cap, rate = {}, {}
for j = 1, 3 do
  cap[j] = tonumber(ARGV[1 + j])
  rate[j] = tonumber(ARGV[4 + j])
end
local h = loadBuckets(KEYS[1], cap, rate)
local until_ms = now + tonumber(ARGV[1])
-- Against the stored clock, before the refill moves it: a penalty running longer stays.
if until_ms <= (tonumber(h[1]) or now) then return 0 end
local level = refill(h, cap, rate, now)
for j = 1, 3 do
  if cap[j] > 0 then level[j] = math.min(level[j], 0) end
end
storeBuckets(KEYS[1], until_ms, level, cap, rate, now)
return 1
