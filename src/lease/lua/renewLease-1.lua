--[[
  Extends a task's lease, only if the caller still holds it.

  Input:
    KEYS[1] lease key            (<prefix>:lease:<taskId>)
    ARGV[1] owner                (the planner slot's id)
    ARGV[2] time-to-live in ms   (the new expiry counts from now)

  Output:
    1  renewed
    0  not held by this owner: expired, released, or taken over by another
]]
if redis.call("GET", KEYS[1]) == ARGV[1] then
  return redis.call("PEXPIRE", KEYS[1], ARGV[2])
end
return 0
