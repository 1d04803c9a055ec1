--[[
  Redis' own clock in ms, with microseconds: every gateway reads the same time,
  whatever its host's clock says.

  Output:
    now, ms since the epoch
]]
local function redisNowMs()
  local t = redis.call("TIME")
  return tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
end
