--[[
  Compare-and-delete: frees a task's lease, only if the caller holds it, so a
  planner whose lease lapsed cannot free its successor's.

  Input:
    KEYS[1] lease key   (<prefix>:lease:<taskId>)
    ARGV[1] owner

  Output:
    1  released
    0  not held by this owner (nothing changed)
]]
if redis.call("GET", KEYS[1]) == ARGV[1] then
  return redis.call("DEL", KEYS[1])
end
return 0
