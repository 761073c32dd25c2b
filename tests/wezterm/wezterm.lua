-- A stand-in for WezTerm's `wezterm` module, for running the Canopy plugin under mlua
-- (Lua 5.4, as WezTerm embeds). It follows the real signatures and shapes
-- (docs: wezterm.org/config/lua): handlers registered with `wezterm.on`, actions as
-- `{ Name = args }` tables (how KeyAssignments are written in Lua),
-- `action_callback` as an `EmitEvent` of a generated `user-defined-N` event (what
-- WezTerm does), and FormatItems checked the way `wezterm.format` checks them.
--
-- What the plugin does is recorded for the tests: toasts, right status, performed
-- actions, log lines. Loaded by the harness with `json_parse` (serde_json, JSON null
-- → nil as in WezTerm) as its argument; returns `wezterm, stub`.

local json_parse = ...

local wezterm = {}
local stub = { handlers = {}, logs = {} }

-- Events -----------------------------------------------------------------------------

function wezterm.on(name, fn)
  assert(type(name) == 'string', 'wezterm.on: event name must be a string')
  assert(type(fn) == 'function', 'wezterm.on: handler must be a function')
  stub.handlers[name] = stub.handlers[name] or {}
  table.insert(stub.handlers[name], fn)
end

--- Fire `name` as WezTerm does: each handler in registration order until one returns
--- something other than nil (that value is the result, e.g. a tab title).
function stub.emit(name, ...)
  for _, fn in ipairs(stub.handlers[name] or {}) do
    local result = fn(...)
    if result ~= nil then
      return result
    end
  end
  return nil
end

function stub.count(name)
  return #(stub.handlers[name] or {})
end

-- Actions ----------------------------------------------------------------------------

wezterm.action = setmetatable({}, {
  __index = function(_, name)
    return function(args)
      return { [name] = args }
    end
  end,
})

local callbacks = 0
function wezterm.action_callback(fn)
  assert(type(fn) == 'function', 'action_callback: expected a function')
  callbacks = callbacks + 1
  local name = 'user-defined-' .. callbacks
  wezterm.on(name, fn)
  return { EmitEvent = name }
end

-- Formatting and data ----------------------------------------------------------------

local ANSI = {}
for _, c in ipairs({
  'Black', 'Maroon', 'Green', 'Olive', 'Navy', 'Purple', 'Teal', 'Silver',
  'Grey', 'Red', 'Lime', 'Yellow', 'Blue', 'Fuchsia', 'Aqua', 'White',
}) do
  ANSI[c] = true
end

local function color_tag(spec)
  if spec == 'Default' then
    return 'Default'
  end
  assert(type(spec) == 'table', 'wezterm.format: a colour must be a table or "Default"')
  if spec.AnsiColor then
    assert(ANSI[spec.AnsiColor], 'wezterm.format: unknown AnsiColor ' .. tostring(spec.AnsiColor))
    return spec.AnsiColor
  end
  assert(type(spec.Color) == 'string', 'wezterm.format: a colour needs AnsiColor or Color')
  return spec.Color
end

--- Renders FormatItems to text with readable markers in place of escape sequences:
--- `<Red>` for a foreground, `<bg:Red>` for a background, `<reset>` for ResetAttributes.
function wezterm.format(items)
  assert(type(items) == 'table', 'wezterm.format: expected a table of FormatItems')
  local out = {}
  for _, item in ipairs(items) do
    if item == 'ResetAttributes' then
      out[#out + 1] = '<reset>'
    elseif type(item) == 'table' and item.Text then
      assert(type(item.Text) == 'string', 'wezterm.format: Text must be a string')
      out[#out + 1] = item.Text
    elseif type(item) == 'table' and item.Foreground then
      out[#out + 1] = '<' .. color_tag(item.Foreground) .. '>'
    elseif type(item) == 'table' and item.Background then
      out[#out + 1] = '<bg:' .. color_tag(item.Background) .. '>'
    elseif type(item) == 'table' and item.Attribute then
      out[#out + 1] = ''
    else
      error('wezterm.format: not a FormatItem: ' .. tostring(item))
    end
  end
  return table.concat(out)
end

wezterm.json_parse = json_parse

for _, level in ipairs({ 'info', 'warn', 'error' }) do
  wezterm['log_' .. level] = function(...)
    local parts = {}
    for i = 1, select('#', ...) do
      parts[i] = tostring((select(i, ...)))
    end
    table.insert(stub.logs, { level = level, msg = table.concat(parts, ' ') })
  end
end

-- Windows, tabs and panes ------------------------------------------------------------

local Pane = {}
Pane.__index = Pane

--- A MuxPane: `user_vars` as set by OSC 1337, `cwd` as its working directory.
function stub.pane(user_vars, cwd)
  return setmetatable({ user_vars = user_vars or {}, cwd = cwd }, Pane)
end

function Pane:get_user_vars()
  local copy = {}
  for k, v in pairs(self.user_vars) do
    copy[k] = v
  end
  return copy
end

--- Since 20240127 a Url object (`file_path` field); nil when unknown.
function Pane:get_current_working_dir()
  if self.cwd == nil then
    return nil
  end
  return { scheme = 'file', file_path = self.cwd }
end

local Window = {}
Window.__index = Window

--- A GUI window whose mux window holds tabs, each a list of panes (`{ {pane, …}, … }`).
function stub.window(tabs)
  return setmetatable({ tabs = tabs or {}, toasts = {}, right_status = nil, actions = {} }, Window)
end

function Window:toast_notification(title, message, url, timeout_ms)
  assert(type(title) == 'string' and type(message) == 'string', 'toast_notification: title and message are strings')
  assert(url == nil or type(url) == 'string', 'toast_notification: url is a string or nil')
  assert(timeout_ms == nil or math.type(timeout_ms) == 'integer', 'toast_notification: timeout_ms is an integer')
  table.insert(self.toasts, { title = title, message = message, url = url, timeout_ms = timeout_ms })
end

function Window:set_right_status(text)
  assert(type(text) == 'string', 'set_right_status: expected a string')
  self.right_status = text
end

--- Records the action; runs callbacks at once, as WezTerm does for EmitEvent.
function Window:perform_action(action, pane)
  assert(type(action) == 'table', 'perform_action: expected an action')
  assert(pane ~= nil, 'perform_action: a pane is required')
  table.insert(self.actions, action)
  if action.EmitEvent then
    stub.emit(action.EmitEvent, self, pane)
  end
end

function Window:mux_window()
  local window = self
  return {
    tabs_with_info = function()
      local infos = {}
      for i, panes in ipairs(window.tabs) do
        local tab = {
          panes = function()
            return panes
          end,
        }
        infos[i] = { index = i - 1, is_active = i == 1, tab = tab }
      end
      return infos
    end,
  }
end

--- The last action the plugin performed with this name (`InputSelector`, …).
function stub.last(window, name)
  for i = #window.actions, 1, -1 do
    if window.actions[i][name] then
      return window.actions[i][name]
    end
  end
  return nil
end

--- Answer the last InputSelector as a user would (nil id: cancel).
function stub.choose(window, pane, id, label)
  local selector = assert(stub.last(window, 'InputSelector'), 'no InputSelector was opened')
  stub.emit(selector.action.EmitEvent, window, pane, id, label)
end

--- Answer the last PromptInputLine (nil line: cancel).
function stub.answer(window, pane, line)
  local prompt = assert(stub.last(window, 'PromptInputLine'), 'no PromptInputLine was opened')
  stub.emit(prompt.action.EmitEvent, window, pane, line)
end

--- A TabInformation whose active pane has these user vars.
function stub.tab_info(user_vars)
  return {
    tab_id = 1,
    tab_index = 0,
    is_active = true,
    window_id = 1,
    window_title = 'w',
    tab_title = '',
    active_pane = {
      pane_id = 1,
      pane_index = 0,
      is_active = true,
      is_zoomed = false,
      title = 'zsh',
      user_vars = user_vars or {},
    },
  }
end

return wezterm, stub
