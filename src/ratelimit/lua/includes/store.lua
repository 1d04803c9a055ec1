--[[
  Writes a scope's refill clock and levels, and lets the hash expire a second
  after it would have refilled completely (msUntilFull() of
  src/ratelimit/bucketMath.ts): an absent hash reads as full, so forgetting it
  then changes nothing.

  Input:
    key    the scope hash
    ts     refill clock, ms
    level  the three levels
    cap    capacity of each (0 = no limit)
    rate   refill per ms of each
    now    Redis clock, ms
]]
local function storeBuckets(key, ts, level, cap, rate, now)
  local base = math.max(0, ts - now)
  local full = base
  for j = 1, 3 do
    if cap[j] > 0 then full = math.max(full, base + (cap[j] - level[j]) / rate[j]) end
  end
  redis.call("HSET", key, "ts", string.format("%.3f", ts),
    "l1", string.format("%.6f", level[1]), "l2", string.format("%.6f", level[2]), "l3", string.format("%.6f", level[3]))
  redis.call("PEXPIRE", key, math.ceil(full) + 1000)
end
