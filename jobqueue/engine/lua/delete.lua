-- delete.lua: delete one job, whatever its state, with its log and wait list.
--
-- A running job's worker finds its lease gone: its complete/fail calls are refused.
--
-- KEYS[1]  meta   KEYS[2] ready   KEYS[3] scheduled   KEYS[4] leases   KEYS[5] succeeded
-- KEYS[6]  failed   KEYS[7] canceled   KEYS[8] events   KEYS[9] uniques   KEYS[10] job hash
-- KEYS[11] done list   KEYS[12] log list
-- ARGV[1]  epoch  ARGV[2] queue  ARGV[3] events maxlen  ARGV[4] local id
-- Returns  1 deleted, 0 no such job
local meta, jkey, done, log = KEYS[1], KEYS[10], KEYS[11], KEYS[12]
local err = preflight(ARGV[1])
if err then return err end
local lid = ARGV[4]
if redis.call('EXISTS', jkey) == 0 then return 0 end
local now = now_ms()
for k = 2, 7 do redis.call('ZREM', KEYS[k], lid) end
local version = 0
if job_state(jkey) then
  release_unique(KEYS[9], jkey, lid)
  notify_waiters(jkey, done)
  version = (tonumber(redis.call('HGET', jkey, 'v')) or 0) + 1
end
redis.call('DEL', jkey, log)
emit(KEYS[8], ARGV[3], ARGV[2], lid, 'deleted', version, now, {})
return 1
