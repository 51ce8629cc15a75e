-- retry.lua: put one failed or canceled job back in the queue (a manual retry).
--
-- The job gets a fresh attempt budget (its max attempts count from now), its stall count is
-- reset, its expiry is removed, and it takes its unique key back if no other live job holds it.
-- Its errors and worker history are kept.
--
-- KEYS[1]  meta   KEYS[2] ready   KEYS[3] failed registry   KEYS[4] canceled registry
-- KEYS[5]  events   KEYS[6] uniques   KEYS[7] wake   KEYS[8] job hash
-- ARGV[1]  epoch  ARGV[2] queue  ARGV[3] events maxlen  ARGV[4] local id  ARGV[5] wake cap
-- Returns  {outcome, state}: outcome 'retried' or 'refused'; state after the call
local meta, ready, failed, canceled, events, uniques, wake, jkey =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local err = preflight(ARGV[1])
if err then return err end
local queue, maxlen, lid = ARGV[2], ARGV[3], ARGV[4]
local state = job_state(jkey)
if state ~= 'failed' and state ~= 'canceled' then
  return {'refused', state or ''}
end
local now = now_ms()
redis.call('ZREM', failed, lid)
redis.call('ZREM', canceled, lid)
requeue_retry(jkey, lid, now, {meta = meta, ready = ready, uniques = uniques,
  events = events, maxlen = maxlen, queue = queue})
wake_workers(wake, 1, tonumber(ARGV[5]))
return {'retried', 'queued'}
