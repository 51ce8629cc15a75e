-- _lib.lua: helpers shared by every jobqueue script.
-- jobqueue/engine/scripts.py prepends the helpers a script uses (each definition below with the
-- comment above it; blocks are separated by a blank line) to that script before loading it, so
-- each script stays one atomic EVALSHA. Nothing here touches a key it is not given.

-- Ready-set score: higher priority first, FIFO within a priority.
-- score = (100 - priority) * 2^44 + sequence  (exact in a double up to 2^53)
local SCORE_STEP = 17592186044416

-- Milliseconds on the Redis clock (never the caller's clock).
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- The Redis type each queue-level key must have (keys end in '}:<kind>').
local KEY_TYPES = {meta = 'hash', ready = 'zset', scheduled = 'zset', leases = 'zset',
  succeeded = 'zset', failed = 'zset', canceled = 'zset', uniques = 'hash',
  events = 'stream', wake = 'list', idle = 'zset'}

-- The error reply for `key` when it holds another type than `wanted` (planted data), or nil
-- when its type is right or it does not exist yet.
local function not_a(key, wanted)
  local found = redis.call('TYPE', key)['ok']
  if found ~= 'none' and found ~= wanted then
    return redis.error_reply('JQWRONGTYPE ' .. key .. ' is a ' .. found ..
      ', not a ' .. wanted .. '; it was written by something other than jobqueue')
  end
  return nil
end

-- The error reply for a queue-level key that holds another type than jobqueue gives it (planted
-- data), or nil when its type is right or it does not exist yet.
local function wrong_type(key)
  local kind = string.match(key, '}:(%a+)$')
  local wanted = kind and KEY_TYPES[kind]
  if wanted then return not_a(key, wanted) end
  return nil
end

-- Checks made before any write, since Redis keeps the writes a failing script made:
--  * every queue-level key in KEYS has its expected type (or does not exist yet), so planted
--    data cannot stop a script half-way; the meta hash (KEYS[1]) by reading its epoch;
--  * the queue's epoch is the one the caller knows: otherwise Redis lost the queue's data
--    (restart without persistence, FLUSHALL).
-- Only the first ``nkeys`` keys are checked when given: scripts pass the number of their
-- queue-level keys, which come first, so the job keys of a bulk call are not scanned (0: the
-- meta hash and epoch only; the script checks its other keys itself).
-- Returns an error reply, or nil when the script may go on.
local function preflight(expected_epoch, nkeys)
  for i = 2, (nkeys or #KEYS) do
    local err = wrong_type(KEYS[i])
    if err then return err end
  end
  local found = redis.pcall('HGET', KEYS[1], 'epoch')
  if type(found) == 'table' then return wrong_type(KEYS[1]) or found end
  if found ~= expected_epoch then
    return redis.error_reply('JQLOST ' .. (found or ''))
  end
  return nil
end

local function clamp_priority(prio)
  prio = math.floor(tonumber(prio) or 0)
  return math.max(-100, math.min(100, prio))
end

local function ready_score(prio, seq)
  return string.format('%.0f', (100 - clamp_priority(prio)) * SCORE_STEP + seq)
end

-- The ready score a job gets when it goes back to the front of its priority (release, stall).
local function front_score(prio)
  return string.format('%.0f', (100 - clamp_priority(prio)) * SCORE_STEP)
end

-- Bumps the job's version (every transition does). Planted garbage in 'v' is reset, not fatal:
-- a script must never stop half-way, since Redis keeps the writes made before an error.
local function bump_version(jkey)
  local ok, v = pcall(redis.call, 'HINCRBY', jkey, 'v', 1)
  if ok then return v end
  redis.call('HSET', jkey, 'v', 1)
  return 1
end

-- The version after `text` (a job's 'v' field, or nil), as bump_version counts: planted
-- garbage starts again at 1. For scripts that write 'v' with the rest of their HSET.
local function next_version(text)
  local n = text and string.match(text, '^%-?%d+$') and tonumber(text)
  return n and n + 1 or 1
end

-- Longest value an event copies from the job hash, in bytes. A longer one (a big result,
-- big arguments, a long error) is left out of the event, its name listed in the event's 'big'
-- field: a reader that needs it reads the job's hash, so no payload is held twice in memory.
local EVENT_VALUE_MAX = 65536

-- Appends one event: the job's local id, queue, new state, version, time and the changed
-- job-hash fields verbatim (flat name/value pairs), but for values past EVENT_VALUE_MAX.
local function emit(stream, maxlen, queue, lid, state, version, t, changes)
  local kept, big = changes, nil
  for i = 2, #changes, 2 do
    if string.len(changes[i]) > EVENT_VALUE_MAX then
      big = big and (big .. ',' .. changes[i - 1]) or changes[i - 1]
    end
  end
  if big then
    kept = {}
    for i = 1, #changes, 2 do
      if string.len(changes[i + 1]) <= EVENT_VALUE_MAX then
        kept[#kept + 1] = changes[i]; kept[#kept + 1] = changes[i + 1]
      end
    end
    kept[#kept + 1] = 'big'; kept[#kept + 1] = big
  end
  redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*',
    'id', lid, 'q', queue, 's', state, 'v', version, 't', t, unpack(kept))
end

-- Wakes the `w` wait() calls blocked on the job's end (its 'w' field, already read; the
-- caller deletes that field). Returns true when there were any.
local function wake_waiters(done_key, w)
  w = tonumber(w or '0') or 0
  if w <= 0 then return false end
  for _ = 1, w do redis.call('RPUSH', done_key, '1') end
  redis.call('PEXPIRE', done_key, 60000)
  return true
end

-- Wakes every wait() blocked on the job's end, if anyone registered.
local function notify_waiters(jkey, done_key)
  if wake_waiters(done_key, redis.call('HGET', jkey, 'w')) then
    redis.call('HDEL', jkey, 'w')
  end
end

-- Frees unique key `u` (the job's 'unique' field, already read, or nil) if this job holds it.
local function free_unique(uniques, u, lid)
  if u and redis.call('HGET', uniques, u) == lid then
    redis.call('HDEL', uniques, u)
  end
end

-- Frees the job's unique key, if this job holds it.
local function release_unique(uniques, jkey, lid)
  free_unique(uniques, redis.call('HGET', jkey, 'unique'), lid)
end

-- Adds a finished job to a registry and keeps the registry bounded by age and size.
local function add_to_registry(reg, lid, now, ttl_ms, limit)
  redis.call('ZADD', reg, now, lid)
  redis.call('ZREMRANGEBYSCORE', reg, '-inf', '(' .. (now - ttl_ms))
  redis.call('ZREMRANGEBYRANK', reg, 0, -(limit + 1))
end

-- A job ends failed or canceled (complete.lua ends jobs succeeded its own, batched way): its
-- cancel request is dropped, its unique key freed, its wait() calls woken, and it is kept
-- for `k.ttl` ms, listed in `registry` (bounded by age and by `k.limit` ids). `k` carries
-- the uniques hash, the job's done list, the ttl and the limit.
local function finish(jkey, lid, now, registry, k)
  redis.call('HDEL', jkey, 'cancel')
  release_unique(k.uniques, jkey, lid)
  notify_waiters(jkey, k.done)
  redis.call('PEXPIRE', jkey, k.ttl)
  add_to_registry(registry, lid, now, k.ttl, k.limit)
end

-- Wakes up to `count` blocked workers: that many tokens pushed onto the queue's wake list,
-- which keeps at most `cap` (a hint that jobs wait, never a count of them).
local function wake_workers(key, count, cap)
  local tokens = {}
  for t = 1, math.min(count, cap) do tokens[t] = '1' end
  if redis.call('LPUSH', key, unpack(tokens)) > cap then
    redis.call('LTRIM', key, 0, cap - 1)
  end
end

-- Leases job `lid` to `worker` until now + `lease_ms`: a fence token from the queue's counter
-- (it grows with every lease, so an earlier holder's token never matches again) and the job
-- in the leases set. `att` is the attempt the lease starts, `workers` the job's workers so far
-- (nil: none), `first` true for a job that never started before. Returns the token, the
-- deadline and the job-hash fields recording the lease, which the caller writes (with state
-- 'running' and the new version) and emits in its 'running' event. claim.lua and
-- enqueue_one.lua (a new job handed to an idle worker) lease through this one function.
local function grant_lease(meta, leases, lid, worker, now, lease_ms, att, workers, first)
  local token = redis.call('HINCRBY', meta, 'fence', 1)
  local deadline = now + lease_ms
  local changes = {'att', att, 'token', token, 'worker', worker,
    'workers', workers and (workers .. ' ' .. worker) or worker, 'last', now, 'lease', deadline}
  if first then
    changes[#changes + 1] = 'started'; changes[#changes + 1] = now
  end
  redis.call('ZADD', leases, deadline, lid)
  return token, deadline, changes
end

-- The job's state, or nil when the key is missing or is not a hash (planted/corrupt data).
local function job_state(jkey)
  local ok, state = pcall(redis.call, 'HGET', jkey, 'state')
  if not ok then return nil end
  return state or nil
end

-- true when the job is running under this fence token.
local function holds_lease(jkey, token)
  local ok, r = pcall(redis.call, 'HMGET', jkey, 'state', 'token')
  return ok and r[1] == 'running' and r[2] == token
end

-- A running job lost its worker (lease expired, or its process died): count a stall, then
-- cancel it (cancel requested), dead-letter it (stall limit reached) or put it back at the
-- front of its priority. The caller has removed it from the leases set. `k` carries the keys
-- and options (those of finish(), and the wake list and its cap). Returns the new state.
local function stall(jkey, lid, now, k)
  local stalls = (tonumber(redis.call('HGET', jkey, 'stalls')) or 0) + 1
  local changes = {'stalls', stalls}
  local state
  if redis.call('HGET', jkey, 'cancel') == '1' then
    state = 'canceled'
  elseif stalls >= k.max_stalls then
    state = 'failed'
    changes[#changes + 1] = 'reason'
    changes[#changes + 1] = 'stalled ' .. stalls .. ' times (' .. k.why ..
      '); dead-lettered'
  else
    state = 'queued'
    redis.call('ZADD', k.ready, front_score(redis.call('HGET', jkey, 'prio')), lid)
    wake_workers(k.wake, 1, k.wake_cap)
  end
  if state ~= 'queued' then
    changes[#changes + 1] = 'ended'; changes[#changes + 1] = now
  end
  redis.call('HSET', jkey, 'state', state, unpack(changes))
  redis.call('HDEL', jkey, 'lease', 'token')
  local v = bump_version(jkey)
  if state ~= 'queued' then
    finish(jkey, lid, now, state == 'failed' and k.failed or k.canceled, k)
  end
  emit(k.events, k.maxlen, k.queue, lid, state, v, now, changes)
  return state
end

-- A manual retry: a failed or canceled job back in the ready set, with a fresh attempt budget
-- (attempts so far become att0), no stalls, no expiry, and its unique key back if free. The
-- caller has taken it out of its registry and wakes the workers. Returns nothing.
local function requeue_retry(jkey, lid, now, k)
  redis.call('PERSIST', jkey)
  local h = redis.call('HMGET', jkey, 'att', 'prio', 'unique')
  local changes = {'att0', tonumber(h[1]) or 0, 'stalls', 0}
  if h[3] and not redis.call('HGET', k.uniques, h[3]) then
    redis.call('HSET', k.uniques, h[3], lid)
  end
  local seq = redis.call('HINCRBY', k.meta, 'seq', 1)
  redis.call('ZADD', k.ready, ready_score(h[2], seq), lid)
  redis.call('HSET', jkey, 'state', 'queued', unpack(changes))
  redis.call('HDEL', jkey, 'ended', 'reason', 'cancel', 'result', 'token', 'lease')
  local v = bump_version(jkey)
  -- Cleared fields travel in the event with an empty value.
  for _, name in ipairs({'ended', 'reason', 'cancel', 'result'}) do
    changes[#changes + 1] = name; changes[#changes + 1] = ''
  end
  emit(k.events, k.maxlen, k.queue, lid, 'queued', v, now, changes)
end
