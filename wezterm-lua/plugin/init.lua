--- Canopy for WezTerm: a state badge on tabs attached to Canopy sessions, counts and cost
--- in the right status, a toast when a session needs you, and a session picker.
---
--- Everything comes from the status snapshot (`status.json`) that the Canopy host keeps
--- beside its socket and replaces atomically. WezTerm's Lua has no sockets, and
--- `format-tab-title` runs synchronously on the GUI thread, so the file is read only in
--- `update-status` (which WezTerm throttles to `status_update_interval`) and the result
--- is cached here; `format-tab-title` reads nothing but that cache.
---
--- Which pane shows which session: `canopy attach` sets the `canopy_session` user var
--- (OSC 1337 SetUserVar) when it runs inside WezTerm and clears it on the way out.
---
--- WezTerm hands `format-tab-title` its TabInformation and PaneInformation as userdata
--- (field getters, not tables), and calls only the first handler registered for it; the
--- tab bar is drawn again only when something it watches changes (the right status
--- string among them), so the right status carries a hash of the badges.
---
--- Load it with `require('canopy')` after `canopy setup wezterm --write` (installed as
--- `canopy/init.lua` in WezTerm's config dir, which WezTerm puts on `package.path` and
--- watches for reloads), then `canopy.apply_to_config(config, opts)`.

local wezterm = require('wezterm')

local M = {}
local H = {} -- private helpers and state

-- Types ------------------------------------------------------------------------------

---@alias canopy.StateKind
---| 'starting' | 'idle' | 'thinking' | 'tool' | 'waiting_permission' | 'waiting_input'
---| 'compacting' | 'error' | 'exited'

---@class canopy.StateStyle
---@field symbol string The badge text.
---@field color string An ANSI colour name (`'Red'`, `'Grey'`, …) or any colour WezTerm parses (`'#rrggbb'`, `'orange'`, `'rgb(255,0,0)'`, `'hsl:120 50 50'`, …).

---@alias canopy.NotifyOn 'waiting_permission' | 'waiting_input' | 'error' | 'finished'

---@class canopy.NotifyOptions
---@field enabled? boolean Toast at all (default true).
---@field on? canopy.NotifyOn[] Which transitions toast. `finished` is a turn ending (thinking, tool, compacting or waiting_permission → idle) or the agent exiting.
---@field timeout_ms? integer How long a toast stays (ms, 0 to 600000), where the platform honours it.

---@class canopy.PickerOptions
---@field key? string Bind the picker to this key (no binding unless set; `'S'` with `'CTRL|SHIFT'` is free in WezTerm's default key table, `'C'` is Copy).
---@field mods? string Modifiers for `key`, e.g. `'CTRL|SHIFT'` or `'LEADER'`.
---@field title? string The selector's title.
---@field new_session? boolean Offer an entry that starts a new session (default true).
---@field agent? string The agent for new sessions (`canopy new --agent`); default Canopy's.

---@class canopy.Options
---@field status_file? string The snapshot to read; default beside Canopy's socket.
---@field canopy? string The `canopy` program for spawned tabs (default `'canopy'` on PATH).
---@field tab_title? boolean Register a `format-tab-title` handler (default true). Set false when another plugin owns tab titles, and call `badge(tab)` from it.
---@field right_status? boolean Set the right status in `update-status` (default true). When false, badge changes redraw the tab bar through a `canopy_badges` user var set on the active pane.
---@field show_cost? boolean Show the total cost in the right status (default true).
---@field states? table<canopy.StateKind, canopy.StateStyle> Overrides per state, merged into the defaults.
---@field notify? canopy.NotifyOptions
---@field picker? canopy.PickerOptions

-- Defaults ---------------------------------------------------------------------------

---@type canopy.Options
H.defaults = {
  status_file = nil,
  canopy = 'canopy',
  tab_title = true,
  right_status = true,
  show_cost = true,
  states = {
    starting = { symbol = '◌', color = 'Grey' },
    idle = { symbol = '●', color = 'Green' },
    thinking = { symbol = '◐', color = 'Blue' },
    tool = { symbol = '⚙', color = 'Teal' },
    waiting_permission = { symbol = '!', color = 'Red' },
    waiting_input = { symbol = '?', color = 'Yellow' },
    compacting = { symbol = '◑', color = 'Purple' },
    error = { symbol = '✗', color = 'Red' },
    exited = { symbol = '■', color = 'Grey' },
  },
  notify = {
    enabled = true,
    on = { 'waiting_permission', 'error', 'finished' },
    timeout_ms = 5000,
  },
  picker = {
    key = nil,
    mods = nil,
    title = 'Canopy sessions',
    new_session = true,
    agent = nil,
  },
}

--- States in the order that needs the user most first: the picker and the right status
--- use it, so what wants attention is seen first.
H.attention = {
  'waiting_permission',
  'error',
  'waiting_input',
  'idle',
  'thinking',
  'tool',
  'compacting',
  'starting',
  'exited',
}
H.rank = {}
for i, kind in ipairs(H.attention) do
  H.rank[kind] = i
end

--- States inside a turn: leaving one for idle means the agent finished the turn.
H.in_turn = { thinking = true, tool = true, compacting = true, waiting_permission = true }

--- The picker's id for "start a new session"; session names cannot contain spaces.
H.NEW_SESSION = ' new session '

H.USER_VAR = 'canopy_session'

-- State ------------------------------------------------------------------------------

---@type canopy.Options
H.opts = nil

--- The last good snapshot. `text` is the file's raw content: an unchanged file is not
--- parsed again (Lua cannot stat, and the file is small, so comparing text is the cheap
--- way to see it is the same).
H.cache = { text = nil, doc = nil, by_name = {}, hash = 0 }

--- The state of each session at the last parse, to toast on transitions only. nil until
--- a first snapshot is seen: sessions found at startup are not news.
---@type table<string, string>|nil
H.last_kinds = nil

--- Which event handlers are registered (apply_to_config may be called twice, and
--- WezTerm keeps every handler registered for an event).
H.registered = {}

--- Whether WezTerm has called our `format-tab-title` handler, and how many updates ran
--- before it did: WezTerm calls only the first handler, so another one registered
--- earlier silences ours, which is worth one warning.
H.title = { ran = false, updates = 0, warned = false }

--- The badge hash each window was last nudged with (`right_status = false`).
H.nudged = {}

-- Options ----------------------------------------------------------------------------

--- Deep copy of plain data.
function H.copy(v)
  if type(v) ~= 'table' then
    return v
  end
  local t = {}
  for k, x in pairs(v) do
    t[k] = H.copy(x)
  end
  return t
end

--- The colour names `AnsiColor` takes: the variants of termwiz's `AnsiColor`, spelt as
--- WezTerm spells them (any other name raises inside `wezterm.format`).
H.ANSI = {
  Black = true, Maroon = true, Green = true, Olive = true, Navy = true, Purple = true,
  Teal = true, Silver = true, Grey = true, Red = true, Lime = true, Yellow = true,
  Blue = true, Fuchsia = true, Aqua = true, White = true,
}

--- The modifier names WezTerm's key parser knows.
H.MODS = {
  NONE = true, SHIFT = true, ALT = true, OPT = true, META = true, CTRL = true,
  SUPER = true, CMD = true, WIN = true, LEADER = true,
}

--- Whether WezTerm can draw `color`: an ANSI name, or whatever its own parser takes
--- (`wezterm.color.parse`, since 20220807); without it, the `#` forms only.
function H.valid_color(color)
  if H.ANSI[color] then
    return true
  end
  local color_mod = wezterm.color
  if type(color_mod) == 'table' and type(color_mod.parse) == 'function' then
    return (pcall(color_mod.parse, color))
  end
  return color:match('^#%x+$') ~= nil and (#color - 1) % 3 == 0 and #color <= 13
end

function H.type_error(want, value)
  return 'must be a ' .. want .. ', not ' .. type(value)
end

--- Checks for each option's value: nil when it is good, else what is wrong.
H.checks = {}

function H.checks.string(v)
  if type(v) ~= 'string' then
    return H.type_error('string', v)
  end
end

function H.checks.word(v)
  if type(v) ~= 'string' then
    return H.type_error('string', v)
  elseif v == '' then
    return 'must not be empty'
  end
end

function H.checks.boolean(v)
  if type(v) ~= 'boolean' then
    return H.type_error('boolean', v)
  end
end

function H.checks.color(v)
  if type(v) ~= 'string' then
    return H.type_error('string', v)
  elseif not H.valid_color(v) then
    return 'is not a colour WezTerm knows: ' .. string.format('%q', v)
      .. ' (an ANSI name such as Red, or #rrggbb, rgb(…), hsl:…, a CSS name)'
  end
end

function H.checks.timeout(v)
  if type(v) ~= 'number' then
    return H.type_error('number', v)
  elseif v ~= math.floor(v) or v < 0 or v > 600000 then
    return 'must be a whole number of milliseconds from 0 to 600000, not ' .. tostring(v)
  end
end

function H.checks.mods(v)
  if type(v) ~= 'string' then
    return H.type_error('string', v)
  end
  for name in v:gmatch('[^|]+') do
    local trimmed = name:match('^%s*(.-)%s*$')
    if not H.MODS[trimmed] then
      return 'has an unknown modifier ' .. string.format('%q', trimmed) .. ' (known: ' .. table.concat(H.keys(H.MODS), ', ') .. ')'
    end
  end
end

function H.checks.notify_on(v)
  if type(v) ~= 'table' then
    return H.type_error('table', v)
  end
  local known = { waiting_permission = true, waiting_input = true, error = true, finished = true }
  for i, on in ipairs(v) do
    if not known[on] then
      return '[' .. i .. '] must be one of ' .. table.concat(H.keys(known), ', ') .. ', not ' .. tostring(on)
    end
  end
end

--- The check for each option, by its path; tables of fields are walked below.
H.schema = {
  status_file = 'string',
  canopy = 'word',
  tab_title = 'boolean',
  right_status = 'boolean',
  show_cost = 'boolean',
  notify = { enabled = 'boolean', on = 'notify_on', timeout_ms = 'timeout' },
  picker = { key = 'word', mods = 'mods', title = 'string', new_session = 'boolean', agent = 'word' },
}

function H.keys(t)
  local ks = {}
  for k in pairs(t) do
    ks[#ks + 1] = tostring(k)
  end
  table.sort(ks)
  return ks
end

--- Validate `opts` and merge it over the defaults. A bad value keeps its default and is
--- named in the returned problems, so one typo costs that option, not the plugin.
---@param opts canopy.Options|nil
---@return canopy.Options resolved
---@return string[] problems
function H.resolve(opts)
  local r = H.copy(H.defaults)
  local problems = {}
  local function bad(path, msg)
    problems[#problems + 1] = 'opts.' .. path .. ' ' .. msg
  end
  if opts == nil then
    return r, problems
  end
  if type(opts) ~= 'table' then
    problems[1] = 'opts ' .. H.type_error('table', opts)
    return r, problems
  end
  for k, v in pairs(opts) do
    local rule = H.schema[k]
    if k == 'states' then
      H.resolve_states(v, r, bad)
    elseif rule == nil then
      bad(tostring(k), 'is not an option (known: ' .. table.concat(H.keys(H.defaults), ', ') .. ')')
    elseif type(rule) == 'string' then
      local err = H.checks[rule](v)
      if err then
        bad(k, err)
      else
        r[k] = v
      end
    elseif type(v) ~= 'table' then
      bad(k, H.type_error('table', v))
    else
      for field, x in pairs(v) do
        local check = rule[field]
        local err = check and H.checks[check](x)
        if not check then
          bad(k, 'has an unknown field ' .. tostring(field) .. ' (known: ' .. table.concat(H.keys(rule), ', ') .. ')')
        elseif err then
          bad(k .. '.' .. field, err)
        else
          r[k][field] = H.copy(x)
        end
      end
    end
  end
  if r.picker.mods and not r.picker.key then
    bad('picker.mods', 'needs picker.key')
    r.picker.mods = nil
  end
  return r, problems
end

function H.resolve_states(states, r, bad)
  if type(states) ~= 'table' then
    return bad('states', H.type_error('table', states))
  end
  for kind, style in pairs(states) do
    local path = 'states.' .. tostring(kind)
    if not H.defaults.states[kind] then
      bad('states', 'has an unknown state ' .. tostring(kind) .. ' (known: ' .. table.concat(H.keys(H.defaults.states), ', ') .. ')')
    elseif type(style) ~= 'table' then
      bad(path, H.type_error('table', style))
    else
      for field, x in pairs(style) do
        local check = ({ symbol = 'word', color = 'color' })[field]
        local err = check and H.checks[check](x)
        if not check then
          bad(path, 'has an unknown field ' .. tostring(field) .. ' (known: color, symbol)')
        elseif err then
          bad(path .. '.' .. field, err)
        else
          r.states[kind][field] = x
        end
      end
    end
  end
end

-- The snapshot -----------------------------------------------------------------------

--- The uid, for the `/tmp/canopy-$UID` fallback. Lua cannot call getuid; Linux tells
--- through /proc. Elsewhere set `status_file` (`canopy setup wezterm` prints it).
function H.uid()
  local uid = os.getenv('UID')
  if uid and uid ~= '' then
    return uid
  end
  local f = io.open('/proc/self/status', 'r')
  if not f then
    return nil
  end
  local text = f:read('a') or ''
  f:close()
  return text:match('\nUid:%s*(%d+)')
end

--- Where the host writes `status.json`: beside `$CANOPY_SOCKET`, else
--- `$XDG_RUNTIME_DIR/canopy/`, else `/tmp/canopy-$UID/` (the host's own rule).
---@return string|nil
function H.default_status_file()
  local socket = os.getenv('CANOPY_SOCKET')
  if socket and socket ~= '' then
    local dir = socket:match('^(.*)/[^/]*$')
    return dir and (dir .. '/status.json') or 'status.json'
  end
  local runtime = os.getenv('XDG_RUNTIME_DIR')
  if runtime and runtime ~= '' then
    return runtime .. '/canopy/status.json'
  end
  local uid = H.uid()
  return uid and ('/tmp/canopy-' .. uid .. '/status.json') or nil
end

function H.status_file()
  if H.opts.status_file then
    return H.opts.status_file
  end
  if H.resolved_file == nil then
    H.resolved_file = H.default_status_file() or false
  end
  return H.resolved_file or nil
end

---@return string|nil
function H.read(path)
  local f = io.open(path, 'rb')
  if not f then
    return nil
  end
  local ok, text = pcall(f.read, f, 'a')
  f:close()
  return ok and text or nil
end

--- Read the snapshot into the cache. Returns the toasts due: one per session that moved
--- into a state the user asked to hear about since the last read.
---@return {name: string, kind: string, on: string, detail: string|nil}[]
function H.refresh()
  local path = H.status_file()
  local text = path and H.read(path)
  if not text then
    -- No host (it removes the file when it stops): nothing to show. Forget the states
    -- too, so the next host's sessions are a fresh start and not a burst of toasts.
    H.cache = { text = nil, doc = nil, by_name = {}, hash = 0 }
    H.last_kinds = nil
    return {}
  end
  if text == H.cache.text then
    return {}
  end
  local ok, doc = pcall(wezterm.json_parse, text)
  if not ok or type(doc) ~= 'table' or type(doc.sessions) ~= 'table' then
    -- Not a whole snapshot (the host renames atomically, so only a foreign writer can
    -- cause this): keep showing the last good one and try again next time.
    wezterm.log_info('canopy: ignoring an unreadable ' .. path)
    return {}
  end
  local by_name = {}
  for _, s in ipairs(doc.sessions) do
    if type(s) == 'table' and type(s.name) == 'string' and type(s.state) == 'table' then
      by_name[s.name] = s
    end
  end
  H.cache = { text = text, doc = doc, by_name = by_name, hash = H.badge_hash(by_name) }
  return H.transitions(by_name)
end

--- A 24-bit FNV-1a hash of every session's name and state: what the badges show. The
--- right status carries it, so a badge change is a right-status change, which is what
--- makes WezTerm draw the tab bar again (wezterm-gui/src/termwindow/mod.rs).
function H.badge_hash(by_name)
  local h = 0x811c9dc5
  for _, name in ipairs(H.keys(by_name)) do
    local text = name .. '\0' .. tostring(by_name[name].state.kind) .. '\0'
    for i = 1, #text do
      h = ((h ~ text:byte(i)) * 0x01000193) & 0xffffffff
    end
  end
  return (h >> 8) ~ (h & 0xff)
end

function H.transitions(by_name)
  local previous = H.last_kinds
  local kinds = {}
  for name, s in pairs(by_name) do
    kinds[name] = s.state.kind
  end
  H.last_kinds = kinds
  if previous == nil then
    return {}
  end
  local wanted = {}
  for _, on in ipairs(H.opts.notify.on) do
    wanted[on] = true
  end
  local due = {}
  for name, s in pairs(by_name) do
    local before, now = previous[name], s.state.kind
    if before ~= now then
      local on = now
      if now == 'exited' or (now == 'idle' and H.in_turn[before]) then
        on = 'finished'
      end
      if wanted[on] then
        due[#due + 1] = { name = name, kind = now, on = on, detail = s.state.detail or s.state.tool }
      end
    end
  end
  table.sort(due, function(a, b)
    return a.name < b.name
  end)
  return due
end

-- Rendering --------------------------------------------------------------------------

function H.color(color)
  if H.ANSI[color] then
    return { AnsiColor = color }
  end
  return { Color = color }
end

function H.style(kind)
  return H.opts.states[kind] or { symbol = '?', color = 'Grey' }
end

--- `obj[key]` for a TabInformation or PaneInformation: userdata with field getters in
--- WezTerm (wezterm-gui/src/termwindow/mod.rs), where an unknown field raises, and a
--- plain table when another plugin builds one. nil for anything else.
function H.field(obj, key)
  local t = type(obj)
  if t == 'table' then
    return obj[key]
  elseif t ~= 'userdata' then
    return nil
  end
  local ok, v = pcall(H.index, obj, key)
  return ok and v or nil
end

function H.index(obj, key)
  return obj[key]
end

--- The session name in a tab's active pane's user vars, if Canopy set one. A tab's
--- `active_pane` is nil while it has none.
function H.tab_session_name(tab_info)
  local vars = H.field(H.field(tab_info, 'active_pane'), 'user_vars')
  local name = type(vars) == 'table' and vars[H.USER_VAR]
  if type(name) == 'string' and name ~= '' then
    return name
  end
  return nil
end

--- Cut `text` to `width` characters (by code point; good enough for session names).
function H.truncate(text, width)
  if width < 1 then
    return ''
  end
  if (utf8.len(text) or #text) <= width then
    return text
  end
  return text:sub(1, (utf8.offset(text, width + 1) or (width + 1)) - 1)
end

--- `s`'s host when it is a remote one (the snapshot's `host` field), else nil.
function H.remote_host(s)
  if type(s.host) == 'string' and s.host ~= '' and s.host ~= 'local' then
    return s.host
  end
  return nil
end

--- One picker line; with `hosts` (sessions of more than one machine) the host leads
--- and the name goes without its `HOST:`.
function H.session_line(s, hosts)
  local style = H.style(s.state.kind)
  local what = s.state.kind
  local detail = s.state.tool or s.state.detail
  if type(detail) == 'string' and detail ~= '' then
    what = what .. ': ' .. detail
  end
  -- A remote host's session whose link dropped (its name is HOST:NAME).
  if type(s.stale_since) == 'number' then
    what = what .. ' (stale)'
  end
  local name = s.name
  if hosts then
    local host = H.remote_host(s) or 'local'
    if name:sub(1, #host + 1) == host .. ':' then
      name = name:sub(#host + 2)
    end
    name = host .. '  ' .. name
  end
  local line = style.symbol .. ' ' .. name .. '  ' .. what .. '  ' .. tostring(s.agent or '')
  local cost = type(s.usage) == 'table' and s.usage.cost_usd
  if type(cost) == 'number' then
    line = line .. string.format('  $%.2f', cost)
  end
  local url = type(s.env) == 'table' and s.env.url
  if type(url) == 'string' and url ~= '' then
    line = line .. '  ' .. url
  end
  -- The PR or MR `canopy pr` opened (absent from hosts before it), then the review
  -- comments not yet sent to the agent.
  local pr = s.pr
  if type(pr) == 'table' and type(pr.number) == 'number' then
    line = line .. string.format(pr.provider == 'gitlab' and '  MR !%d' or '  PR #%d', pr.number)
    if type(pr.state) == 'string' and pr.state ~= 'open' then
      line = line .. ' ' .. pr.state
    end
  end
  local comments = type(s.comments) == 'table' and #s.comments or 0
  if comments > 0 then
    line = line .. string.format('  %d comment%s', comments, comments == 1 and '' or 's')
  end
  -- The conflict radar: the branch no longer merges into its base, or shares files
  -- with another live session.
  local radar = type(s.radar) == 'table' and s.radar or {}
  if type(radar.conflicts) == 'table' and #radar.conflicts > 0 then
    line = line .. '  ⚠ conflicts'
  elseif type(radar.shared_files) == 'table' and #radar.shared_files > 0 then
    line = line .. '  ⚠ shared files'
  end
  return line
end

-- Public API -------------------------------------------------------------------------

--- The FormatItems of the state badge for a tab whose active pane is attached to a
--- Canopy session, or an empty list. Reads only the cache, so it is safe in
--- `format-tab-title`; for tab-bar plugins that own the title.
---@param tab_info table|userdata A TabInformation (WezTerm's userdata, or a table).
---@return table[]
function M.badge(tab_info)
  local s = M.session(tab_info)
  if not s then
    return {}
  end
  local style = H.style(s.state.kind)
  return {
    { Foreground = H.color(style.color) },
    { Text = style.symbol },
    'ResetAttributes',
  }
end

--- The session a tab's active pane is attached to, if the host knows it.
---@param tab_info table|userdata A TabInformation (WezTerm's userdata, or a table).
---@return table|nil session The Session record from the snapshot.
function M.session(tab_info)
  local name = H.tab_session_name(tab_info)
  return name and H.cache.by_name[name] or nil
end

--- FormatItems for the right status: a badge and count per state with sessions, most
--- urgent first, then the total cost. Empty without a host.
---@return table[]
function M.status_items()
  local doc = H.cache.doc
  if not doc or next(H.cache.by_name) == nil then
    return {}
  end
  local counts = type(doc.counts) == 'table' and doc.counts or {}
  local items = {}
  for _, kind in ipairs(H.attention) do
    local n = counts[kind]
    if type(n) == 'number' and n > 0 then
      local style = H.style(kind)
      items[#items + 1] = { Foreground = H.color(style.color) }
      items[#items + 1] = { Text = style.symbol .. ' ' .. string.format('%d', n) }
      items[#items + 1] = 'ResetAttributes'
      items[#items + 1] = { Text = '  ' }
    end
  end
  if H.opts.show_cost and type(doc.total_cost_usd) == 'number' then
    items[#items + 1] = { Text = string.format('$%.2f  ', doc.total_cost_usd) }
  end
  return items
end

--- The picker's choices, sessions needing attention first, then by name. With sessions
--- of remote hosts they are grouped by host, local first.
---@return {id: string, label: string}[]
function M.choices()
  local sessions = {}
  local hosts = false
  for _, s in pairs(H.cache.by_name) do
    sessions[#sessions + 1] = s
    hosts = hosts or H.remote_host(s) ~= nil
  end
  table.sort(sessions, function(a, b)
    local ha, hb = H.remote_host(a) or '', H.remote_host(b) or ''
    if ha ~= hb then
      return ha < hb
    end
    local ra, rb = H.rank[a.state.kind] or 99, H.rank[b.state.kind] or 99
    if ra ~= rb then
      return ra < rb
    end
    return a.name < b.name
  end)
  local choices = {}
  for _, s in ipairs(sessions) do
    choices[#choices + 1] = { id = s.name, label = H.session_line(s, hosts) }
  end
  if H.opts.picker.new_session then
    choices[#choices + 1] = { id = H.NEW_SESSION, label = '+ new session…' }
  end
  return choices
end

--- Read the snapshot and toast about transitions. `update-status` calls this; call it
--- yourself from your own `update-status` handler when `right_status` is off.
---@param window table|nil A Window, for toasts and the right status.
---@param pane table|nil The window's active pane, for the badge nudge (`right_status = false`).
function M.update(window, pane)
  local due = H.refresh()
  if window and H.opts.notify.enabled then
    for _, t in ipairs(due) do
      local msg = (t.kind == 'idle' and 'finished' or t.kind:gsub('_', ' '))
      if t.detail then
        msg = msg .. ': ' .. tostring(t.detail)
      end
      window:toast_notification('Canopy: ' .. t.name, msg, nil, H.opts.notify.timeout_ms)
    end
  end
  if window and H.opts.right_status then
    window:set_right_status(wezterm.format(H.with_hash(M.status_items())))
  elseif window then
    H.nudge(window, pane)
  end
  H.check_title_handler()
end

--- The right status with the badge hash as the colour of its last space: invisible, but
--- a different string whenever a badge changes.
function H.with_hash(items)
  if #items == 0 then
    return items
  end
  items[#items + 1] = { Foreground = { Color = string.format('#%06x', H.cache.hash) } }
  items[#items + 1] = { Text = ' ' }
  return items
end

--- Without our right status, redraw the tab bar by setting the `canopy_badges` user var
--- on the window's active pane when the badges changed (a user-var change redraws it).
--- `inject_output` works on local panes only; elsewhere badges wait for the next event.
function H.nudge(window, pane)
  local ok, id = pcall(window.window_id, window)
  if not ok or pane == nil or H.nudged[id] == H.cache.hash then
    return
  end
  H.nudged[id] = H.cache.hash
  local value = H.base64(string.format('%06x', H.cache.hash))
  pcall(pane.inject_output, pane, '\27]1337;SetUserVar=canopy_badges=' .. value .. '\7')
end

H.B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'

--- Base64 of a string whose length is a multiple of 3 (the hash's six hex digits).
function H.base64(text)
  local out = {}
  for i = 1, #text, 3 do
    local a, b, c = text:byte(i, i + 2)
    local n = (a << 16) | (b << 8) | c
    for shift = 18, 0, -6 do
      local k = ((n >> shift) & 63) + 1
      out[#out + 1] = H.B64:sub(k, k)
    end
  end
  return table.concat(out)
end

--- Warn once when our title handler has not run after two updates with sessions: WezTerm
--- calls only the first `format-tab-title` handler (config/src/lua.rs), so another one
--- registered before ours owns the titles.
function H.check_title_handler()
  if not H.opts.tab_title or H.title.ran or H.title.warned or next(H.cache.by_name) == nil then
    return
  end
  H.title.updates = H.title.updates + 1
  if H.title.updates >= 2 then
    H.title.warned = true
    wezterm.log_warn(
      'canopy.wezterm: another format-tab-title handler runs first, so Canopy badges no tab; '
        .. 'set tab_title = false and call canopy.badge(tab) or canopy.format_tab_title(...) from it'
    )
  end
end

--- Focus the tab attached to session `name`, or spawn one running `canopy attach NAME`.
function H.attach(window, pane, name)
  local mux_window = window:mux_window()
  for _, info in ipairs(mux_window:tabs_with_info()) do
    for _, p in ipairs(info.tab:panes()) do
      if p:get_user_vars()[H.USER_VAR] == name then
        window:perform_action(wezterm.action.ActivateTab(info.index), pane)
        return
      end
    end
  end
  local spawn = { args = { H.opts.canopy, 'attach', name } }
  local s = H.cache.by_name[name]
  if s and type(s.worktree) == 'string' then
    spawn.cwd = s.worktree
  end
  window:perform_action(wezterm.action.SpawnCommandInNewTab(spawn), pane)
end

--- The directory of `pane`, where a new session's repository is looked for.
function H.pane_dir(pane)
  local ok, cwd = pcall(function()
    return pane:get_current_working_dir()
  end)
  if not ok or cwd == nil then
    return nil
  end
  if type(cwd) == 'string' then -- before 20240127: a file:// URL string
    return (cwd:gsub('^file://[^/]*', ''))
  end
  return cwd.file_path
end

--- Ask for a name, then spawn a tab that creates the session and attaches to it.
function H.new_session(window, pane)
  local prompt = wezterm.action.PromptInputLine({
    description = 'New Canopy session name',
    action = wezterm.action_callback(function(win, p, line)
      if not line or line == '' then
        return
      end
      -- One tab does both so the user sees `canopy new`'s error if it fails.
      local script = '"$0" new "$1"'
      local args = { 'sh', '-c', nil, H.opts.canopy, line }
      if H.opts.picker.agent then
        script = script .. ' --agent "$2"'
        args[6] = H.opts.picker.agent
      end
      args[3] = script .. ' && exec "$0" attach "$1" || { echo "[press Enter]"; read -r _; }'
      win:perform_action(wezterm.action.SpawnCommandInNewTab({ args = args, cwd = H.pane_dir(p) }), p)
    end),
  })
  window:perform_action(prompt, pane)
end

--- The picker as an action: bind it yourself, or set `picker.key`.
---@return table action A KeyAssignment.
function M.picker()
  return wezterm.action_callback(function(window, pane)
    M.update(window)
    window:perform_action(
      wezterm.action.InputSelector({
        title = H.opts.picker.title,
        choices = M.choices(),
        fuzzy = true,
        action = wezterm.action_callback(function(win, p, id)
          if id == nil then -- cancelled
            return
          elseif id == H.NEW_SESSION then
            H.new_session(win, p)
          else
            H.attach(win, p, id)
          end
        end),
      }),
      pane
    )
  end)
end

--- Register the event handlers with `opts` (validated; errors name the bad option).
---@param opts canopy.Options|nil
function M.setup(opts)
  local problems
  H.opts, problems = H.resolve(opts)
  if #problems > 0 then
    wezterm.log_error('canopy.wezterm: ' .. table.concat(problems, '; ') .. ' (using the defaults for these)')
  end
  H.resolved_file = nil
  if not H.registered['update-status'] then
    H.registered['update-status'] = true
    wezterm.on('update-status', function(window, pane)
      M.update(window, pane)
    end)
  end
  -- Only when asked: another plugin may own tab titles and call `badge` itself.
  if H.opts.tab_title and not H.registered['format-tab-title'] then
    H.registered['format-tab-title'] = true
    wezterm.on('format-tab-title', function(...)
      H.title.ran = true
      return M.format_tab_title(...)
    end)
  end
end

--- The `format-tab-title` handler: badge and session name for attached tabs, nil (WezTerm's
--- own title) for the rest. Cache only: this runs on the GUI thread for every tab. Call it
--- from your own handler (with `tab_title = false`) to keep Canopy's titles.
function M.format_tab_title(tab, _tabs, _panes, _config, _hover, max_width)
  local s = M.session(tab)
  if not s then
    return nil
  end
  local items = { { Text = ' ' } }
  for _, item in ipairs(M.badge(tab)) do
    items[#items + 1] = item
  end
  local room = (tonumber(max_width) or 32) - 3 - (utf8.len(H.style(s.state.kind).symbol) or 1)
  items[#items + 1] = { Text = ' ' .. H.truncate(s.name, room) .. ' ' }
  return items
end

--- Set up Canopy and add its key binding (when `opts.picker.key` is set) to `config`.
---@param config table The config builder from `wezterm.config_builder()`.
---@param opts canopy.Options|nil
function M.apply_to_config(config, opts)
  M.setup(opts)
  if H.opts.picker.key then
    config.keys = config.keys or {}
    table.insert(config.keys, { key = H.opts.picker.key, mods = H.opts.picker.mods, action = M.picker() })
  end
end

return M
