--[[
  Takes one submission from a tenant's submit bucket, shared by every intake
  process. The clock is Redis TIME, so the intake hosts' clocks never matter.
  An absent hash is a full bucket; it expires once it would have refilled.

  Input:
    KEYS[1]  bucket hash (<prefix>:tenant-submit:<tenant>), fields level, ts
    ARGV[1]  capacity (the burst)
    ARGV[2]  refill per ms

  Output:
    { admitted (1 | 0), wait ms until one token is there (string) }
]]
local t = redis.call("TIME")
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local cap = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local h = redis.call("HMGET", KEYS[1], "level", "ts")
local level = tonumber(h[1]) or cap
local ts = tonumber(h[2]) or now
level = math.min(cap, level + math.max(0, now - ts) * rate)

local admitted = 0
local wait = 0
if level >= 1 then
  level = level - 1
  admitted = 1
else
  wait = (1 - level) / rate
end
redis.call("HSET", KEYS[1], "level", tostring(level), "ts", tostring(now))
redis.call("PEXPIRE", KEYS[1], math.ceil((cap - level) / rate) + 1000)
return { admitted, string.format("%.3f", wait) }
