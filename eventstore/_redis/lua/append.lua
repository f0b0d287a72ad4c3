-- Append a batch of events to one aggregate stream, atomically.
--
-- KEYS[1]  aggregate stream        {ns:pN}:a:<type>:<id>
-- KEYS[2]  partition log           {ns:pN}:log, entries 0-<position>: k <type>:<id>, v, t
-- KEYS[3]  partition position      {ns:pN}:pos
-- KEYS[4]  snapshot hash           {ns:pN}:s:<type>:<id>
-- KEYS[5]  type index (set of ids) {ns:pN}:ix:<type>
-- KEYS[6]  types of the partition  {ns:pN}:types
-- KEYS[4..6] may be left out when the script cannot touch them: the expected version is
-- an integer >= 1 (so the aggregate is not new) and there is no snapshot. Every argument
-- costs on both sides (packing, parsing, Lua tables), so a save sends only what it needs.
--
-- ARGV[1]  expected version: "any" | "none" | "exists" | <integer>
-- ARGV[2]  aggregate type
-- ARGV[3]  aggregate id
-- ARGV[4]  number of events n
-- ARGV[5]  arguments per event w: 5, or 8 when an event has metadata or causal ids
-- ARGV[6]  notification channel ("" = do not publish)
-- ARGV[7]  partition number (for notifications)
-- ARGV[8]  publish command: "PUBLISH" | "SPUBLISH" (sharded: the channel is in KEYS' slot)
-- ARGV[9 + w*(i-1) ...] per event i: id, type, schema version, time (ms), data (JSON),
--          and when w = 8: metadata (JSON or ""), correlation id (or ""), causation id (or "")
-- ARGV[9 + w*n ...] optionally a snapshot (needs all six KEYS): version, schema
--          fingerprint, state (JSON object), time (ms)
--
-- Replies (never a partial write: every check happens before the first write):
--   {"ok", first_version, first_position, notified}
--   {"dup", first_version, position_1, ..., position_n}   already written; nothing is
--        written but the position counter set to its own value, so that a WAIT after the
--        re-send counts replicas that hold the batch
--   {"conflict", actual_version, conflicting_version_or_0}
--   {"invalid", event_index (1-based, 0 = batch), field, reason}
--   {"corrupt", key, reason}

local KEYS, ARGV = KEYS, ARGV  -- locals: each use of a global is a table lookup
local FIRST_EVENT = 9
local n = tonumber(ARGV[4])
local PER_EVENT = tonumber(ARGV[5])
-- locals, not global lookups, on the paths run for every event (redis.call stays spelled
-- out with its KEYS[i]: an ACL refusal is explained from the line it names)
local match, byte = string.match, string.byte
-- numbers leave the script only through this: Lua's own formatting (tostring, ..)
-- turns integers above 1e14 into exponent form; %d is exact up to 2^53
local function int(x) return string.format('%d', x) end
local MAX_POSITION = 9007199254740992  -- 2^53: positions and versions stay exact

-- Nothing after 0-<seq> in a stream? An empty range is cheap, where reading the last
-- entry costs a Lua table of its fields (measured: ~2.5 us against ~5 of server time).
local function nothing_after(key, seq)
  return #redis.call('XREVRANGE', key, '+', '(0-' .. int(seq), 'COUNT', 1) == 0
end

-- The stream's version is its length: aggregate streams are never trimmed, and entry ids
-- are all >= 0-1, so n entries with none after 0-n are exactly 0-1 .. 0-n. The "none
-- after" half is checked here only when the length disagrees with the caller; otherwise
-- the first write checks it for free (XADD 0-<n+1> fails if an entry is at or after it).
local function stream_is_ours(key, n)
  return n == 0 or nothing_after(key, n)
end

local function field(entry, name)
  local f = entry[2]
  for j = 1, #f, 2 do
    if f[j] == name then return f[j + 1] end
  end
  return nil
end

-- 1. validate the batch (shape, JSON, unique ids) before reading anything
if PER_EVENT ~= 5 and PER_EVENT ~= 8 then
  return {'invalid', 0, 'batch', 'arguments per event must be 5 or 8'}
end
local events_end = FIRST_EVENT - 1 + (PER_EVENT * (n or 0))
if not n or n < 1 or (#ARGV ~= events_end and #ARGV ~= events_end + 4) then
  return {'invalid', 0, 'batch', 'argument count does not match event count'}
end
local has_snapshot = #ARGV == events_end + 4
if (has_snapshot or ARGV[1] == 'any' or ARGV[1] == 'exists' or ARGV[1] == 'none' or ARGV[1] == '0')
    and #KEYS < 6 then
  return {'invalid', 0, 'keys', 'this append may write the snapshot or index: pass all six keys'}
end
local publish = ARGV[8]
if publish ~= 'PUBLISH' and publish ~= 'SPUBLISH' then
  return {'invalid', 0, 'publish', 'not PUBLISH or SPUBLISH: ' .. publish}
end
-- a JSON object: cjson decodes arrays to tables too, so the text must open with '{'
local decode = cjson.decode
local function is_object(text)
  if byte(text) ~= 123 and not match(text, '^%s*{') then return false end
  local ok, value = pcall(decode, text)
  return ok and type(value) == 'table'
end
local seen = {}
for i = 1, n do
  local at = FIRST_EVENT + PER_EVENT * (i - 1)
  local id = ARGV[at]
  if id == '' then return {'invalid', i, 'event_id', 'empty'} end
  if seen[id] then return {'invalid', i, 'event_id', 'repeated in the batch: ' .. id} end
  seen[id] = true
  if ARGV[at + 1] == '' then return {'invalid', i, 'type', 'empty'} end
  if not match(ARGV[at + 2], '^%d+$') then return {'invalid', i, 'schema_version', 'not an integer'} end
  if not match(ARGV[at + 3], '^%d+$') then return {'invalid', i, 'timestamp', 'not an integer'} end
  if not is_object(ARGV[at + 4]) then return {'invalid', i, 'data', 'not a JSON object'} end
  if PER_EVENT == 8 and ARGV[at + 5] ~= '' and not is_object(ARGV[at + 5]) then
    return {'invalid', i, 'metadata', 'not a JSON object'}
  end
end

-- 2. where the stream is, and whether this batch is already there (idempotent re-send)
local current = redis.call('XLEN', KEYS[1])
local NOT_OURS = 'last entry id is not 0-<version>'  -- a string: no table on every call
local expected = ARGV[1]
local base
if expected == 'any' then base = current
elseif expected == 'exists' then base = current
elseif expected == 'none' then base = 0
else base = tonumber(expected) end
if base == nil then return {'invalid', 0, 'expected_version', 'not understood: ' .. expected} end

local function already_written(from)
  -- entries from+1 .. from+n hold exactly these ids, in order?
  if from < 0 or current < from + n then return false, 0 end
  local entries = redis.call('XRANGE', KEYS[1], '0-' .. int(from + 1), '0-' .. int(from + n))
  for i = 1, n do
    if entries[i] == nil or field(entries[i], 'i') ~= ARGV[FIRST_EVENT + PER_EVENT * (i - 1)] then
      return false, from + i
    end
  end
  local positions = {'dup', from + 1}
  for i = 1, n do positions[#positions + 1] = tonumber(field(entries[i], 'p')) end
  -- WAIT/WAITAOF are documented to count this connection's previous *writes*, and a
  -- re-send writes nothing: one replicated no-op write makes the wait after a re-send on
  -- a fresh connection cover the batch on any server (7.0 waits for the offset at the
  -- connection's last command of any kind, so there it is only belt and braces)
  local stored_pos = redis.call('GET', KEYS[3])
  if stored_pos then redis.call('SET', KEYS[3], stored_pos) end
  return true, positions
end

-- a length the caller did not expect may be a stream with ids not written by us
if (expected == 'none' or current ~= base) and not stream_is_ours(KEYS[1], current) then
  return {'corrupt', KEYS[1], NOT_OURS}
end

if expected == 'any' or expected == 'exists' then
  if current >= n then
    local dup, reply = already_written(current - n)
    if dup then return reply end
  end
  if expected == 'exists' and current == 0 then return {'conflict', 0, 0} end
elseif current ~= base then
  if current > base then
    local dup, reply = already_written(base)
    if dup then return reply end
    return {'conflict', current, reply}
  end
  return {'conflict', current, 0}
end

-- 3. the partition counter and log must agree before we write to them
local stored_pos = redis.call('GET', KEYS[3]) or '0'
if not match(stored_pos, '^%d+$') then return {'corrupt', KEYS[3], 'position is not an integer'} end
local pos = tonumber(stored_pos)
if pos > MAX_POSITION - n then  -- not pos + n: above 2^53 a sum rounds
  return {'invalid', 0, 'position', 'the partition log is full: positions stop at 2^53'}
end
if not nothing_after(KEYS[2], pos) then return {'corrupt', KEYS[2], 'log is ahead of the position counter'} end

-- 4. write: events, pointers, position, index, snapshot, notifications
local atype, aid, partition = ARGV[2], ARGV[3], ARGV[7]
-- what a log pointer names: the stream is in the log's own partition, so the whole key
-- (~25 B more, with its hash tag and prefix) need not be stored with every event
local ref = atype .. ':' .. aid
local first_position = pos + 1
local channel = ARGV[6]
-- a notification nobody hears is pure cost (a JSON encode per event): ask once per call.
-- NUMPAT counts every pattern on the server, so a pattern listener anywhere keeps it on.
if channel ~= '' then
  local listeners
  if publish == 'SPUBLISH' then
    listeners = redis.call('PUBSUB', 'SHARDNUMSUB', channel)[2]
  else  -- patterns are counted only when no subscriber of the channel itself is
    listeners = redis.call('PUBSUB', 'NUMSUB', channel)[2]
    if listeners == 0 then listeners = redis.call('PUBSUB', 'NUMPAT') end
  end
  if listeners == 0 then channel = '' end
end
-- an event's fields as a table, the optional ones only when set; the common case
-- (w = 5) passes its fields to XADD as they are, without a table
local function fields_of(at, position)
  local fields = {'t', ARGV[at + 1], 's', ARGV[at + 2], 'i', ARGV[at], 'ts', ARGV[at + 3],
                  'p', position, 'd', ARGV[at + 4]}
  if PER_EVENT == 8 then
    if ARGV[at + 5] ~= '' then fields[#fields + 1] = 'm'; fields[#fields + 1] = ARGV[at + 5] end
    if ARGV[at + 6] ~= '' then fields[#fields + 1] = 'c'; fields[#fields + 1] = ARGV[at + 6] end
    if ARGV[at + 7] ~= '' then fields[#fields + 1] = 'z'; fields[#fields + 1] = ARGV[at + 7] end
  end
  return fields
end
local notified = 0
for i = 1, n do
  local at = FIRST_EVENT + PER_EVENT * (i - 1)
  -- as strings once: Lua formats a number each time it is passed or concatenated
  local version, position = int(base + i), int(pos + i)
  local entry_id, etype = '0-' .. version, ARGV[at + 1]
  if i == 1 then  -- the first write: it fails, writing nothing, if the ids are not ours
    local added
    if PER_EVENT == 5 then
      added = redis.pcall('XADD', KEYS[1], entry_id, 't', etype, 's', ARGV[at + 2], 'i', ARGV[at],
                          'ts', ARGV[at + 3], 'p', position, 'd', ARGV[at + 4])
    else
      added = redis.pcall('XADD', KEYS[1], entry_id, unpack(fields_of(at, position)))
    end
    if type(added) == 'table' and added.err then
      if string.find(added.err, 'equal or smaller', 1, true) then
        return {'corrupt', KEYS[1], NOT_OURS}
      end
      -- anything else (OOM, ACL): again, unprotected, so the error names this line
      redis.call('XADD', KEYS[1], entry_id, unpack(fields_of(at, position)))
    end
  elseif PER_EVENT == 5 then
    redis.call('XADD', KEYS[1], entry_id, 't', etype, 's', ARGV[at + 2], 'i', ARGV[at],
               'ts', ARGV[at + 3], 'p', position, 'd', ARGV[at + 4])
  else
    redis.call('XADD', KEYS[1], entry_id, unpack(fields_of(at, position)))
  end
  -- the aggregate type is in the pointer: a field for it would cost ~17 B per event
  redis.call('XADD', KEYS[2], '0-' .. position, 'k', ref, 'v', version, 't', etype)
  if channel ~= '' then
    -- cjson writes numbers with 14 significant digits: the large ones go in as digits
    local rest = cjson.encode({aggregate_type = atype, aggregate_id = aid,
      partition = tonumber(partition), event_type = etype, event_id = ARGV[at]})
    notified = notified + redis.call(publish, channel, '{"version":' .. version ..
      ',"position":' .. position .. ',"recorded_at":' .. int(tonumber(ARGV[at + 3])) .. ',' .. string.sub(rest, 2))
  end
end
redis.call('SET', KEYS[3], int(pos + n))
if base == 0 then
  redis.call('SADD', KEYS[5], aid)
  redis.call('SADD', KEYS[6], atype)
end

local snap_version = has_snapshot and tonumber(ARGV[events_end + 1]) or 0
if snap_version and snap_version > 0 and snap_version <= base + n then
  -- a corrupt stored version must not fail the script after the events were written
  local existing = tonumber(redis.call('HGET', KEYS[4], 'v') or '0') or 0
  if snap_version > existing then
    redis.call('HSET', KEYS[4], 'v', int(snap_version), 'f', ARGV[events_end + 2],
               's', ARGV[events_end + 3], 'ts', ARGV[events_end + 4])
  end
end

return {'ok', base + 1, first_position, notified}
