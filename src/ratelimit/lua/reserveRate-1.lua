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
local t = redis.call("TIME")
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local horizon = tonumber(ARGV[1])
local h = redis.call("HMGET", KEYS[1], "ts", "l1", "l2", "l3")
local ts = tonumber(h[1]) or now
local cap, rate, need, level = {}, {}, {}, {}
for j = 1, 3 do
  cap[j] = tonumber(ARGV[1 + j])
  rate[j] = tonumber(ARGV[4 + j])
  need[j] = tonumber(ARGV[7 + j])
  if cap[j] > 0 then
    local l = math.min(cap[j], tonumber(h[1 + j]) or cap[j])
    if now > ts then l = math.min(cap[j], l + (now - ts) * rate[j]) end
    level[j] = l
  else
    level[j] = 0
  end
end
if now > ts then ts = now end

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

local full = base
for j = 1, 3 do
  if cap[j] > 0 then
    level[j] = level[j] - need[j]
    full = math.max(full, base + (cap[j] - level[j]) / rate[j])
  end
end
redis.call("HSET", KEYS[1], "ts", string.format("%.3f", ts),
  "l1", string.format("%.6f", level[1]), "l2", string.format("%.6f", level[2]), "l3", string.format("%.6f", level[3]))
redis.call("PEXPIRE", KEYS[1], math.ceil(full) + 1000)
return { 1, string.format("%.3f", wait), string.format("%.3f", now) }
