//! The Lua scripts behind tagged entries and invalidation, run by Redis in one atomic step each.
//!
//! Each script reads values with `MGET` (which answers nil for a key of another type instead of
//! failing), so a foreign value under one of our keys is overwritten or ignored, never a
//! permanent error. Numbers that must stay exact (random generations) are kept as strings;
//! clocks are counters far below 2^53 and are printed with `%.0f`, never `tostring`, which
//! would print large ones in exponent form. The memory backend mirrors every script in Rust
//! (see [`super::memory`]); the record formats are in [`super::stamp`].
//!
//! In a Redis Cluster the keys a script touches must share a hash slot: they all belong to one
//! namespace, whose keys the key layout can put in one slot.

/// Reads an entry, its namespace record and, when the entry has tags, its tag records.
///
/// KEYS: entry, namespace record. ARGV: the tag record prefix (`<prefix>:#tag:<ns>:`).
/// Returns one string framing `{entry, record, tag records...}` (tag records in the order of
/// the entry's tag names): per value a byte 0 (missing) or 1 followed by a 4-byte big-endian
/// length and the value. One bulk string costs the client a fraction of parsing an array of
/// them on every hit ([`frames`] reads it).
pub const READ_TAGGED: &str = r"
local found = redis.call('MGET', KEYS[1], KEYS[2])
local entry, record = found[1], found[2]
local function frame(value)
  if not value then return '\0' end
  return '\1' .. struct.pack('>I4', #value) .. value
end
local function framed(values, n)
  local parts = {}
  for i = 1, n do parts[i] = frame(values[i]) end
  return table.concat(parts)
end
if not entry or string.byte(entry, 1) ~= 199 then return framed({entry, record}, 2) end
local flags = string.byte(entry, 3)
if not flags or bit.band(flags, 16) == 0 then return framed({entry, record}, 2) end
local at = 4
if bit.band(flags, 2) ~= 0 then at = at + 8 end
if bit.band(flags, 8) ~= 0 then at = at + 8 end
local high, low = string.byte(entry, at, at + 1)
if not low then return framed({entry, record}, 2) end
local names = string.sub(entry, at + 2, at + 1 + high * 256 + low)
local keys = {}
for name in string.gmatch(names, '[^\n]+') do keys[#keys + 1] = ARGV[1] .. name end
if #keys == 0 then return framed({entry, record}, 2) end
local tags = redis.call('MGET', unpack(keys))
local out = {entry, record}
for i = 1, #keys do out[i + 2] = tags[i] end
return framed(out, #keys + 2)
";

/// The values [`READ_TAGGED`] framed into one string, as slices of it; `None` when the framing
/// is damaged.
pub fn frames(framed: &bytes::Bytes) -> Option<Vec<Option<bytes::Bytes>>> {
    let mut values = Vec::with_capacity(4);
    let mut at = 0;
    while at < framed.len() {
        match framed[at] {
            0 => {
                values.push(None);
                at += 1;
            }
            1 => {
                let len = framed.get(at + 1..at + 5)?;
                let len = u32::from_be_bytes(len.try_into().ok()?) as usize;
                let start = at + 5;
                let end = start.checked_add(len).filter(|&end| end <= framed.len())?;
                values.push(Some(framed.slice(start..end)));
                at = end;
            }
            _ => return None,
        }
    }
    Some(values)
}

/// Stores an entry and makes sure its namespace record, and each of its tags' records of the
/// current generation, live at least as long as the entry.
///
/// KEYS: entry, namespace record, tag log, tag records. ARGV: value, lifetime in ms.
/// A missing (or foreign) tag record is written as invalidated at the tag log's floor when the
/// log is complete up to the current clock and does not list the tag (the tag was not
/// invalidated since the floor), else as invalidated at the current clock (its history is
/// unknown): see [`super::stamp`]. Extending the namespace record extends the tag log with it.
pub const STORE_TAGGED: &str = r"
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
local record = redis.call('MGET', KEYS[2])[1]
if not record then return 1 end
local generation, clock = string.match(record, '^(%d+):(%d+):%d+$')
if not generation then
  generation = string.match(record, '^(%d+)$')
  clock = '0'
end
if not generation then return 1 end
local keep = tonumber(ARGV[2])
if redis.call('PTTL', KEYS[2]) < keep then
  redis.call('PEXPIRE', KEYS[2], keep)
  redis.call('PEXPIRE', KEYS[3], keep)
end
local read, floor, listed = false, nil, nil
for i = 4, #KEYS do
  local tag = redis.call('MGET', KEYS[i])[1]
  local owner = tag and string.match(tag, '^(%d+):%d+:%d+$')
  if owner ~= generation then
    if not read then
      read = true
      local log = redis.call('MGET', KEYS[3])[1]
      if log then
        local of, from, last, rest = string.match(log, '^(%d+):(%d+):(%d+)(\n.*)$')
        if of == generation and last == clock then floor, listed = from, rest end
      end
    end
    local since = clock
    if listed and not string.find(listed, '\n' .. KEYS[i] .. '\n', 1, true) then since = floor end
    redis.call('SET', KEYS[i], generation .. ':' .. since .. ':' .. since, 'PX', keep)
  elseif redis.call('PTTL', KEYS[i]) < keep then
    redis.call('PEXPIRE', KEYS[i], keep)
  end
end
return 1
";

/// Bumps a namespace's clock and records it as the latest invalidation of some tags (hard or
/// soft), or as a soft purge of the whole namespace when no tag keys are given; lists the tags
/// in the namespace's tag log.
///
/// KEYS: namespace record, tag log, tag records. ARGV: `hard` or `soft` (for the tags), or
/// `namespace-soft` (no tag keys); the most bytes the tag log keeps.
/// Returns the new clock, or 0 when the namespace has no valid record (then nothing stored in it
/// is valid anyway, and its next reader starts a new generation). Tag records that do not exist
/// are left alone: the tag log lists them, so an entry stored under one of them later is judged
/// as invalidated now (see [`STORE_TAGGED`]). The tag log is extended when it is complete up to
/// the clock before this bump and stays under its bound; else it starts over, knowing only this
/// invalidation. It lives as long as the namespace record.
pub const INVALIDATE: &str = r"
local record = redis.call('MGET', KEYS[1])[1]
if not record then return 0 end
local generation, clock, soft = string.match(record, '^(%d+):(%d+):(%d+)$')
if not generation then
  generation = string.match(record, '^(%d+)$')
  clock, soft = '0', '0'
end
if not generation then return 0 end
local now = string.format('%.0f', tonumber(clock) + 1)
local function lines(keys)
  if #keys == 0 then return '' end
  return table.concat(keys, '\n') .. '\n'
end
local tags, seen = {}, {}
for i = 3, #KEYS do
  if not seen[KEYS[i]] then
    seen[KEYS[i]] = true
    tags[#tags + 1] = KEYS[i]
  end
end
local floor, listed = clock, '\n' .. lines(tags)
local log = redis.call('MGET', KEYS[2])[1]
if log then
  local of, from, last, rest = string.match(log, '^(%d+):(%d+):(%d+)(\n.*)$')
  if of == generation and last == clock then
    local unlisted = {}
    for _, key in ipairs(tags) do
      if not string.find(rest, '\n' .. key .. '\n', 1, true) then unlisted[#unlisted + 1] = key end
    end
    local added = lines(unlisted)
    if #rest + #added <= tonumber(ARGV[2]) then floor, listed = from, rest .. added end
  end
end
local lifetime = redis.call('PTTL', KEYS[1])
local entry = generation .. ':' .. floor .. ':' .. now .. listed
if lifetime > 0 then
  redis.call('SET', KEYS[2], entry, 'PX', lifetime)
else
  redis.call('SET', KEYS[2], entry)
end
if ARGV[1] == 'namespace-soft' then
  redis.call('SET', KEYS[1], generation .. ':' .. now .. ':' .. now, 'KEEPTTL')
  return tonumber(now)
end
redis.call('SET', KEYS[1], generation .. ':' .. now .. ':' .. soft, 'KEEPTTL')
for i = 3, #KEYS do
  local tag = redis.call('MGET', KEYS[i])[1]
  if tag then
    local owner, hard, tag_soft = string.match(tag, '^(%d+):(%d+):(%d+)$')
    if owner == generation then
      if ARGV[1] == 'hard' then hard = now else tag_soft = now end
      redis.call('SET', KEYS[i], owner .. ':' .. hard .. ':' .. tag_soft, 'KEEPTTL')
    end
  end
end
return tonumber(now)
";

/// Marks one entry soft-purged in place (flag bit 5 of its header), keeping its TTL.
///
/// KEYS: entry. Returns 1 when the entry exists (marked now or before), else 0.
pub const MARK_SOFT_PURGED: &str = r"
local entry = redis.call('MGET', KEYS[1])[1]
if not entry or string.byte(entry, 1) ~= 199 then return 0 end
local flags = string.byte(entry, 3)
if not flags then return 0 end
if bit.band(flags, 32) == 0 then
  local marked = string.sub(entry, 1, 2) .. string.char(bit.bor(flags, 32)) .. string.sub(entry, 4)
  redis.call('SET', KEYS[1], marked, 'KEEPTTL')
end
return 1
";

#[cfg(test)]
mod tests {
    use super::frames;
    use bytes::Bytes;

    #[test]
    fn framed_values_are_read_back_and_damage_is_refused() {
        let framed = Bytes::from_static(b"\x01\x00\x00\x00\x03abc\x00\x01\x00\x00\x00\x00");
        assert_eq!(
            frames(&framed),
            Some(vec![
                Some(Bytes::from_static(b"abc")),
                None,
                Some(Bytes::new())
            ])
        );
        assert_eq!(frames(&Bytes::new()), Some(vec![]));
        for damaged in [&b"\x02"[..], b"\x01\x00\x00\x00\x04abc", b"\x01\x00\x00"] {
            assert_eq!(frames(&Bytes::copy_from_slice(damaged)), None);
        }
    }
}
