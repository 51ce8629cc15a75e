-- fail.lua: record a failed attempt of a running job, then retry it later, or let it die.
--
-- The error (exception class path and traceback, as text) is appended to the job's errors,
-- which keep at most ARGV[11] errors and ARGV[12] bytes (their JSON): the oldest are dropped
-- first (the new one is always kept), and the array then starts with a marker entry
-- {"c": "jobqueue.exceptions.ErrorsDropped", "tb": "<N> earlier errors were dropped.", "n": 0};
-- the hash's 'edrop' holds N. Then, in this order:
--   cancel was requested      -> canceled
--   retry allowed (ARGV[9] >= 0) and attempts left -> scheduled at now + ARGV[9] ms
--   otherwise                 -> failed (dead): kept for the failed TTL, in the failed registry
-- Attempts left: attempts - attempts before the last manual retry - stalls < max attempts.
-- Refused, with no change, when the fence token is not the job's current one; but the same
-- failure sent again (its reply was lost after it ran: same token, this attempt's error last)
-- is answered with the state it left, as if it had just been recorded.
-- The event carries what changed, never the whole errors: 'error' (the new entry, with its
-- "at"), and once errors were dropped, 'edrop' (N) and 'ekept' (errors kept, the marker not
-- counted): a reader appends 'error' to the errors it has and keeps the last 'ekept' of them.
--
-- KEYS[1]  meta   KEYS[2] leases   KEYS[3] scheduled   KEYS[4] failed registry
-- KEYS[5]  canceled registry   KEYS[6] events   KEYS[7] uniques   KEYS[8] job hash
-- KEYS[9]  done list
-- ARGV[1]  epoch  ARGV[2] queue  ARGV[3] events maxlen  ARGV[4] failed TTL ms
-- ARGV[5]  registry size limit   ARGV[6] local id   ARGV[7] fence token
-- ARGV[8]  error JSON {"c": class path, "tb": traceback, "n": attempt} (appended to errors)
-- ARGV[9]  retry delay ms, or -1 when this error must not be retried
-- ARGV[10] reason for a final failure ('' = none)
-- ARGV[11] most errors a job keeps   ARGV[12] most bytes of errors a job keeps
-- Returns  the job's new state, or '' when refused
local meta, leases, scheduled, failed, canceled, events, uniques, jkey, done =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9]
local err = preflight(ARGV[1])
if err then return err end
local queue, maxlen, ttl, limit = ARGV[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
local lid, token, error_json, delay = ARGV[6], ARGV[7], ARGV[8], tonumber(ARGV[9])
local reason = ARGV[10]
if not holds_lease(jkey, token) then
  local ok, h = pcall(redis.call, 'HMGET', jkey, 'state', 'token', 'errors')
  if ok and h[2] == token and h[1] ~= 'running' and h[3] then
    local read, errors = pcall(cjson.decode, h[3])
    local mine = cjson.decode(error_json)
    local last = read and type(errors) == 'table' and errors[#errors]
    if type(last) == 'table' and last.n == mine.n and last.c == mine.c then return h[1] end
  end
  return ''
end
local now = now_ms()

-- The error carries its time. The kept errors are re-encoded one by one to be counted and
-- measured; the new one is kept as the caller wrote it.
error_json = string.sub(error_json, 1, -2) .. ',"at":' .. now .. '}'
local max_errors, max_bytes = tonumber(ARGV[11]), tonumber(ARGV[12])
local h0 = redis.call('HMGET', jkey, 'errors', 'edrop')
local ok, decoded = pcall(cjson.decode, h0[1] or '[]')
local kept = {}
if ok and type(decoded) == 'table' then
  for _, e in ipairs(decoded) do
    if type(e) == 'table' and e.c ~= 'jobqueue.exceptions.ErrorsDropped' then
      kept[#kept + 1] = cjson.encode(e)
    end
  end
end
kept[#kept + 1] = error_json
local bytes = 0
for _, text in ipairs(kept) do bytes = bytes + string.len(text) + 1 end
local first, dropped = 1, tonumber(h0[2]) or 0
while first < #kept and (#kept - first + 1 > max_errors or bytes > max_bytes) do
  bytes = bytes - string.len(kept[first]) - 1
  first, dropped = first + 1, dropped + 1
end
local entries = {}
if dropped > 0 then
  entries[1] = cjson.encode({c = 'jobqueue.exceptions.ErrorsDropped',
    tb = dropped .. ' earlier errors were dropped.', n = 0})
end
for i = first, #kept do entries[#entries + 1] = kept[i] end
local errors = '[' .. table.concat(entries, ',') .. ']'
redis.call('ZREM', leases, lid)
redis.call('HDEL', jkey, 'lease')

local h = redis.call('HMGET', jkey, 'att', 'att0', 'stalls', 'max', 'cancel')
local used = (tonumber(h[1]) or 0) - (tonumber(h[2]) or 0) - (tonumber(h[3]) or 0)
local max_attempts = tonumber(h[4]) or 1
local state
local changes = {}
if h[5] == '1' then
  state = 'canceled'
elseif delay >= 0 and used < max_attempts then
  state = 'scheduled'
  local run_at = now + delay
  redis.call('ZADD', scheduled, run_at, lid)
  changes[#changes + 1] = 'run_at'; changes[#changes + 1] = run_at
else
  state = 'failed'
end
if state ~= 'scheduled' then
  changes[#changes + 1] = 'ended'; changes[#changes + 1] = now
  if reason ~= '' then changes[#changes + 1] = 'reason'; changes[#changes + 1] = reason end
end
local event = {'error', error_json}
if dropped > 0 then
  changes[#changes + 1] = 'edrop'; changes[#changes + 1] = dropped
  event[#event + 1] = 'ekept'; event[#event + 1] = #kept - first + 1
end
redis.call('HSET', jkey, 'state', state, 'errors', errors, unpack(changes))
local v = bump_version(jkey)
if state ~= 'scheduled' then
  finish(jkey, lid, now, state == 'failed' and failed or canceled,
    {uniques = uniques, done = done, ttl = ttl, limit = limit})
end
for _, item in ipairs(changes) do event[#event + 1] = item end
emit(events, maxlen, queue, lid, state, v, now, event)
return state
