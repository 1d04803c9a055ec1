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
local t = redis.call("TIME")
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local h = redis.call("HMGET", KEYS[1], "ts", "l1", "l2", "l3")
local ts = tonumber(h[1]) or now
local until_ms = now + tonumber(ARGV[1])
if until_ms <= ts then return 0 end
local cap, rate, level = {}, {}, {}
local full = until_ms - now
for j = 1, 3 do
  cap[j] = tonumber(ARGV[1 + j])
  rate[j] = tonumber(ARGV[4 + j])
  if cap[j] > 0 then
    local l = math.min(cap[j], tonumber(h[1 + j]) or cap[j])
    if now > ts then l = math.min(cap[j], l + (now - ts) * rate[j]) end
    level[j] = math.min(l, 0)
    full = math.max(full, (until_ms - now) + (cap[j] - level[j]) / rate[j])
  else
    level[j] = 0
  end
end
redis.call("HSET", KEYS[1], "ts", string.format("%.3f", until_ms),
  "l1", string.format("%.6f", level[1]), "l2", string.format("%.6f", level[2]), "l3", string.format("%.6f", level[3]))
redis.call("PEXPIRE", KEYS[1], math.ceil(full) + 1000)
return 1
