--[[
  Settles a call to its actual usage: charges (positive delta) or refunds
  (negative delta) the difference from what was reserved. The provider's
  `anthropic-ratelimit-*-remaining` headers, when given, cap the levels: they
  only ever lower the local view (a stale header must not hand out capacity).
  Same arithmetic as src/ratelimit/bucketMath.ts.

  The model's usage window (includes/usage) gets actual − reserved, in the same
  round trip.

  Input:
    KEYS[1]       scope hash (<prefix>:ratelimit:<model>[/<tier>])
    KEYS[2]       the model's usage hash (<prefix>:ratelimit-used:<model>)
    ARGV[1..3]    capacity of requests, input tokens, output tokens (0 = no limit)
    ARGV[4..6]    refill per ms of each
    ARGV[7..9]    delta of each (actual − reserved, charged to the buckets)
    ARGV[10..12]  provider's remaining of each; -1 when not reported
    ARGV[13]      usage window, ms (0: usage not recorded, KEYS[2] untouched)
    ARGV[14..16]  actual − reserved of each, for the usage window

  Output:
    1
]]
--- @include "includes/clock"
--- @include "includes/effective"
--- @include "includes/refill"
--- @include "includes/store"
--- @include "includes/usage"

local now = redisNowMs()
local cap, rate = {}, {}
for j = 1, 3 do
  cap[j] = tonumber(ARGV[j])
  rate[j] = tonumber(ARGV[3 + j])
end
local level, ts = refill(loadBuckets(KEYS[1], cap, rate), cap, rate, now)
local windowMs = tonumber(ARGV[13])
if windowMs > 0 then addToUsage(KEYS[2], now, windowMs, { tonumber(ARGV[14]), tonumber(ARGV[15]), tonumber(ARGV[16]) }) end

local limited = false
for j = 1, 3 do
  if cap[j] > 0 then
    limited = true
    local l = math.min(cap[j], level[j] - tonumber(ARGV[6 + j]))
    local remaining = tonumber(ARGV[9 + j])
    if remaining >= 0 then l = math.min(l, remaining) end
    level[j] = l
  end
end
-- No bucket limited and no penalty in force: nothing to keep.
if not limited and ts <= now then return 1 end
storeBuckets(KEYS[1], ts, level, cap, rate, now)
return 1
