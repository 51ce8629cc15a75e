-- renew.lua: extend the leases of running jobs (the worker's heartbeat for its jobs).
--
-- Not a transition: no version bump, no event. Refused (no change) for a job whose fence
-- token is not the caller's: it was reclaimed and another attempt owns it now.
--
-- KEYS[1]  meta   KEYS[2] leases   KEYS[2 + i] job hash of the i-th job
-- ARGV[1]  epoch  ARGV[2] lease ms  then, for each job: local id, fence token
-- Returns  {now_ms, deadline_ms, status...} with one status per job:
--          1 renewed, 2 renewed and cancel requested, 0 refused (lease lost)
local meta, leases = KEYS[1], KEYS[2]
local err = preflight(ARGV[1], 2)
if err then return err end
local now = now_ms()
local deadline = now + tonumber(ARGV[2])
local out = {now, deadline}
for i = 1, #KEYS - 2 do
  local jkey, lid, token = KEYS[2 + i], ARGV[1 + 2 * i], ARGV[2 + 2 * i]
  if holds_lease(jkey, token) then
    redis.call('ZADD', leases, deadline, lid)
    redis.call('HSET', jkey, 'lease', deadline)
    out[#out + 1] = (redis.call('HGET', jkey, 'cancel') == '1') and 2 or 1
  else
    out[#out + 1] = 0
  end
end
return out
