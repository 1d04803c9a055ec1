--[[
  A model's usage over the last window (usedOver() of
  src/ratelimit/usageWindow.ts): the current window's amounts plus the previous
  window's times the share of it still inside the last window, never below 0.

  Input:
    KEYS[1]     usage hash (<prefix>:ratelimit-used:<model>)
    ARGV[1]     window length, ms

  Output:
    { requests, input tokens, output tokens } as strings (Lua numbers would be truncated to integers)
]]
--- @include "includes/clock"
--- @include "includes/usage"

local windowMs = tonumber(ARGV[1])
local now = redisNowMs()
local s = loadUsage(KEYS[1], now, windowMs)
local left = 1 - (now - s.w * windowMs) / windowMs
local out = {}
for j = 1, 3 do out[j] = string.format("%.6f", math.max(0, s.cur[j] + s.prev[j] * left)) end
return out
