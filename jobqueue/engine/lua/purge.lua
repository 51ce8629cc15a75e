-- purge.lua: delete up to N jobs of one state of a queue (never running jobs).
--
-- The caller repeats until it returns 0, so a huge queue is purged in bounded batches without
-- blocking Redis. Job keys are derived from the ids read from the state's set (ARGV prefixes).
--
-- KEYS[1]  meta   KEYS[2] the state's set (ready, scheduled, succeeded, failed or canceled)
-- KEYS[3]  events   KEYS[4] uniques
-- ARGV[1]  epoch  ARGV[2] queue  ARGV[3] events maxlen  ARGV[4] job key prefix
-- ARGV[5]  done-list prefix   ARGV[6] log-list prefix   ARGV[7] batch size
-- ARGV[8]  the state those jobs must be in
-- Returns  how many ids were taken from the set (0 when it is empty)
local meta, set, events, uniques = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local err = preflight(ARGV[1])
if err then return err end
local queue, maxlen, prefix, done_prefix, log_prefix = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local batch, wanted = tonumber(ARGV[7]), ARGV[8]
local now = now_ms()
local ids = redis.call('ZRANGE', set, 0, batch - 1)
for _, lid in ipairs(ids) do
  local jkey = prefix .. lid
  redis.call('ZREM', set, lid)
  local state = job_state(jkey)
  if state == wanted or (state == nil and redis.call('EXISTS', jkey) == 1) then
    local version = 0
    if state then
      release_unique(uniques, jkey, lid)
      notify_waiters(jkey, done_prefix .. lid)
      version = (tonumber(redis.call('HGET', jkey, 'v')) or 0) + 1
    end
    redis.call('DEL', jkey, log_prefix .. lid)
    emit(events, maxlen, queue, lid, 'deleted', version, now, {})
  end
end
return #ids
