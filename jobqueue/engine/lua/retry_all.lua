-- retry_all.lua: put up to N jobs of one registry (failed or canceled) back in the queue.
--
-- The same transition as retry.lua, for the oldest N ids of the registry. The caller repeats
-- until it returns 0, so a huge registry is handled in bounded batches.
-- Job keys are derived from the ids read from the registry (ARGV[4] prefix).
--
-- KEYS[1]  meta   KEYS[2] ready   KEYS[3] registry (failed or canceled)   KEYS[4] events
-- KEYS[5]  uniques   KEYS[6] wake
-- ARGV[1]  epoch  ARGV[2] queue  ARGV[3] events maxlen  ARGV[4] job key prefix
-- ARGV[5]  batch size   ARGV[6] the registry's state ('failed' or 'canceled')   ARGV[7] wake cap
-- Returns  how many ids were taken from the registry (0 when it is empty)
local meta, ready, registry, events, uniques, wake =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local err = preflight(ARGV[1])
if err then return err end
local queue, maxlen, prefix, batch, wanted = ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5]), ARGV[6]
local now = now_ms()
local k = {meta = meta, ready = ready, uniques = uniques, events = events, maxlen = maxlen,
  queue = queue}
local ids = redis.call('ZRANGE', registry, 0, batch - 1)
local woken = 0
for _, lid in ipairs(ids) do
  local jkey = prefix .. lid
  redis.call('ZREM', registry, lid)
  if job_state(jkey) == wanted then
    requeue_retry(jkey, lid, now, k)
    woken = woken + 1
  end
end
if woken > 0 then wake_workers(wake, woken, tonumber(ARGV[7])) end
return #ids
