--[[
  Settles a call to its actual usage: charges (positive delta) or refunds
  (negative delta) the difference from what was reserved. The provider's
  `anthropic-ratelimit-*-remaining` headers, when given, cap the levels: they
  only ever lower the local view (a stale header must not hand out capacity).
  Same arithmetic as src/ratelimit/bucketMath.ts.

  Input:
    KEYS[1]       scope hash (<prefix>:ratelimit:<model>[/<tier>])
    ARGV[1..3]    capacity of requests, input tokens, output tokens (0 = no limit)
    ARGV[4..6]    refill per ms of each
    ARGV[7..9]    delta of each (actual − reserved)
    ARGV[10..12]  provider's remaining of each; -1 when not reported

  Output:
    1
]]
local t = redis.call("TIME")
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local h = redis.call("HMGET", KEYS[1], "ts", "l1", "l2", "l3")
local ts = tonumber(h[1]) or now
local cap, rate, level = {}, {}, {}
for j = 1, 3 do
  cap[j] = tonumber(ARGV[j])
  rate[j] = tonumber(ARGV[3 + j])
  if cap[j] > 0 then
    local l = math.min(cap[j], tonumber(h[1 + j]) or cap[j])
    if now > ts then l = math.min(cap[j], l + (now - ts) * rate[j]) end
    l = math.min(cap[j], l - tonumber(ARGV[6 + j]))
    local remaining = tonumber(ARGV[9 + j])
    if remaining >= 0 then l = math.min(l, remaining) end
    level[j] = l
  else
    level[j] = 0
  end
end
if now > ts then ts = now end

local full = math.max(0, ts - now)
local limited = false
for j = 1, 3 do
  if cap[j] > 0 then
    limited = true
    full = math.max(full, math.max(0, ts - now) + (cap[j] - level[j]) / rate[j])
  end
end
if not limited and ts <= now then return 1 end
redis.call("HSET", KEYS[1], "ts", string.format("%.3f", ts),
  "l1", string.format("%.6f", level[1]), "l2", string.format("%.6f", level[2]), "l3", string.format("%.6f", level[3]))
redis.call("PEXPIRE", KEYS[1], math.ceil(full) + 1000)
return 1
