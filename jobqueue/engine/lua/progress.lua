-- progress.lua: record a running job's progress (JSON {"done", "total", "message"}).
--
-- KEYS[1]  meta   KEYS[2] events   KEYS[3] job hash
-- ARGV[1]  epoch  ARGV[2] queue    ARGV[3] events maxlen
-- ARGV[4]  local id   ARGV[5] fence token   ARGV[6] progress JSON
-- Returns  1 recorded, 0 refused (the token is not the job's current one)
local meta, events, jkey = KEYS[1], KEYS[2], KEYS[3]
local err = preflight(ARGV[1])
if err then return err end
if not holds_lease(jkey, ARGV[5]) then return 0 end
local now = now_ms()
redis.call('HSET', jkey, 'progress', ARGV[6])
local v = bump_version(jkey)
emit(events, ARGV[3], ARGV[2], ARGV[4], 'running', v, now, {'progress', ARGV[6]})
return 1
