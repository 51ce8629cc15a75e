-- enqueue.lua: create one or more jobs in one queue.
--
-- A job whose key already exists is not written again (its id makes a retried call after a
-- lost reply idempotent). A job with a unique key that a live job already holds is not created:
-- the existing job's id is returned instead.
--
-- KEYS[1]  meta      KEYS[2] ready     KEYS[3] scheduled   KEYS[4] events
-- KEYS[5]  wake      KEYS[6] uniques   KEYS[6 + i] job hash of the i-th job
-- ARGV[1]  epoch     ARGV[2] queue name   ARGV[3] events maxlen   ARGV[4] wake cap
-- ARGV[5]  number of jobs, then for each job:
--          local id, run-at ms (0 = now), priority, unique key ('' = none),
--          number of extra fields n, then n name/value pairs (task, args, kwargs, max, ...)
-- Returns  {now_ms, ...} and, per job, the state of a job created ('queued' or 'scheduled',
--          a string), or {'exists', local id, its state} when the same id was already there,
--          or {'dup', holder's local id, ''} when its unique key is held by a live job
local meta, ready, scheduled, events, wake, uniques =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local err = preflight(ARGV[1], 6)
if err then return err end
local queue, maxlen, wake_cap = ARGV[2], ARGV[3], tonumber(ARGV[4])
local count = tonumber(ARGV[5])
local now = now_ms()
local out = {now}
local pos = 6
local woken = 0
-- Sequence numbers are reserved for the whole call at the first ready job (unused ones leave
-- gaps, which keep the order), and the ready jobs enter the ready set in one ZADD at the end.
local seq, ready_pairs = nil, {}
for i = 1, count do
  local jkey = KEYS[6 + i]
  local lid, run_at, prio, unique = ARGV[pos], tonumber(ARGV[pos + 1]),
    tonumber(ARGV[pos + 2]), ARGV[pos + 3]
  local nfields = tonumber(ARGV[pos + 4])
  local first, last = pos + 5, pos + 4 + 2 * nfields
  pos = last + 1
  local holder = false
  if unique ~= '' then holder = redis.call('HGET', uniques, unique) end
  if redis.call('EXISTS', jkey) == 1 then
    out[#out + 1] = {'exists', lid, job_state(jkey) or ''}
  elseif holder then
    out[#out + 1] = {'dup', holder, ''}
  else
    local fields = {}
    for j = first, last do fields[#fields + 1] = ARGV[j] end
    local state
    if run_at > now then
      state = 'scheduled'
      fields[#fields + 1] = 'run_at'; fields[#fields + 1] = run_at
      redis.call('ZADD', scheduled, run_at, lid)
    else
      state = 'queued'
      if not seq then seq = redis.call('HINCRBY', meta, 'seq', count) - count end
      seq = seq + 1
      ready_pairs[#ready_pairs + 1] = ready_score(prio, seq)
      ready_pairs[#ready_pairs + 1] = lid
      woken = woken + 1
    end
    if prio ~= 0 then fields[#fields + 1] = 'prio'; fields[#fields + 1] = prio end
    if unique ~= '' then
      fields[#fields + 1] = 'unique'; fields[#fields + 1] = unique
      redis.call('HSET', uniques, unique, lid)
    end
    fields[#fields + 1] = 'enq'; fields[#fields + 1] = now
    redis.call('HSET', jkey, 'state', state, 'v', 1, unpack(fields))
    emit(events, maxlen, queue, lid, state, 1, now, fields)
    out[#out + 1] = state  -- the common case kept short: the reply is read per job
  end
end
if woken > 0 then
  redis.call('ZADD', ready, unpack(ready_pairs))
  wake_workers(wake, woken, wake_cap)
end
return out
