--[[
  Writes a scope's refill clock, and the level and shape of each limited bucket
  (an unlimited one is left as it is), and lets the hash expire a second after
  it would have refilled completely (msUntilFull() of
  src/ratelimit/bucketMath.ts): an absent hash reads as full, so forgetting it
  then changes nothing.

  Input:
    key    the scope hash
    ts     refill clock, ms
    level  the three levels
    cap    capacity of each (0 = no limit), as loadBuckets() made it
    rate   refill per ms of each
    now    Redis clock, ms
]]
local function storeBuckets(key, ts, level, cap, rate, now)
  local base = math.max(0, ts - now)
  local full = base
  local fields = { "ts", string.format("%.3f", ts) }
  for j = 1, 3 do
    if cap[j] > 0 then
      full = math.max(full, base + (cap[j] - level[j]) / rate[j])
      table.insert(fields, "l" .. j)
      table.insert(fields, string.format("%.6f", level[j]))
      table.insert(fields, "c" .. j)
      table.insert(fields, string.format("%.17g", cap[j]))
      table.insert(fields, "r" .. j)
      table.insert(fields, string.format("%.17g", rate[j]))
    end
  end
  redis.call("HSET", key, unpack(fields))
  redis.call("PEXPIRE", key, math.ceil(full) + 1000)
end
