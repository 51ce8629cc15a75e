-- cancel.lua: cancel a job.
--
-- scheduled / queued -> canceled at once (kept for the failed TTL, in the canceled registry).
-- running            -> stays running with cancel requested; the worker sees it when it renews
--                       the lease and stops the job, which then ends canceled.
-- Any other state    -> refused, no change.
--
-- KEYS[1]  meta   KEYS[2] ready   KEYS[3] scheduled   KEYS[4] canceled registry
-- KEYS[5]  events   KEYS[6] uniques   KEYS[7] job hash   KEYS[8] done list
-- ARGV[1]  epoch  ARGV[2] queue  ARGV[3] events maxlen  ARGV[4] local id
-- ARGV[5]  TTL ms of a canceled job   ARGV[6] registry size limit   ARGV[7] reason
-- Returns  {outcome, state}: outcome 'canceled', 'requested' or 'refused'; state is the
--          job's state after the call ('' when the job does not exist)
local meta, ready, scheduled, canceled, events, uniques, jkey, done =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local err = preflight(ARGV[1])
if err then return err end
local queue, maxlen, lid = ARGV[2], ARGV[3], ARGV[4]
local ttl, limit, reason = tonumber(ARGV[5]), tonumber(ARGV[6]), ARGV[7]
local state = job_state(jkey)
local now = now_ms()
if state == 'queued' or state == 'scheduled' then
  redis.call('ZREM', ready, lid)
  redis.call('ZREM', scheduled, lid)
  local changes = {'ended', now, 'reason', reason}
  redis.call('HSET', jkey, 'state', 'canceled', unpack(changes))
  local v = bump_version(jkey)
  finish(jkey, lid, now, canceled, {uniques = uniques, done = done, ttl = ttl, limit = limit})
  emit(events, maxlen, queue, lid, 'canceled', v, now, changes)
  return {'canceled', 'canceled'}
elseif state == 'running' then
  if redis.call('HGET', jkey, 'cancel') ~= '1' then
    redis.call('HSET', jkey, 'cancel', '1', 'reason', reason)
    local v = bump_version(jkey)
    emit(events, maxlen, queue, lid, 'running', v, now, {'cancel', '1', 'reason', reason})
  end
  return {'requested', 'running'}
end
return {'refused', state or ''}
