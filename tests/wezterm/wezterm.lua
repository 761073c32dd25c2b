-- The pure-Lua half of the WezTerm model (`model.rs` has the objects and events): the
-- `wezterm` module's `format`, `action`, `action_callback`, `color.parse` and
-- `json_parse`, each following the WezTerm source file named beside it. Loaded with
-- `json_parse` (serde_json; JSON null → nil as in WezTerm) as its argument; returns the
-- module, into which model.rs adds `on`, `emit` and the log functions.

local json_parse = ...

local wezterm = { json_parse = json_parse }

function wezterm.config_builder()
  return {}
end

-- Colours ----------------------------------------------------------------------------

-- termwiz's `AnsiColor` variants: `AnsiColor = NAME` must be one of these, spelt so.
local ANSI = {}
for _, c in ipairs({
  'Black', 'Maroon', 'Green', 'Olive', 'Navy', 'Purple', 'Teal', 'Silver',
  'Grey', 'Red', 'Lime', 'Yellow', 'Blue', 'Fuchsia', 'Aqua', 'White',
}) do
  ANSI[c] = true
end

-- The CSS named colours csscolorparser knows. WezTerm also takes the X11 names of its
-- rgb.txt (color-types/src/lib.rs `from_named`); the model leaves those out, so it is
-- stricter than WezTerm there, never looser.
local CSS = {}
for name in ([[aliceblue antiquewhite aqua aquamarine azure beige bisque black
  blanchedalmond blue blueviolet brown burlywood cadetblue chartreuse chocolate coral
  cornflowerblue cornsilk crimson cyan darkblue darkcyan darkgoldenrod darkgray darkgreen
  darkgrey darkkhaki darkmagenta darkolivegreen darkorange darkorchid darkred darksalmon
  darkseagreen darkslateblue darkslategray darkslategrey darkturquoise darkviolet deeppink
  deepskyblue dimgray dimgrey dodgerblue firebrick floralwhite forestgreen fuchsia
  gainsboro ghostwhite gold goldenrod gray green greenyellow grey honeydew hotpink
  indianred indigo ivory khaki lavender lavenderblush lawngreen lemonchiffon lightblue
  lightcoral lightcyan lightgoldenrodyellow lightgray lightgreen lightgrey lightpink
  lightsalmon lightseagreen lightskyblue lightslategray lightslategrey lightsteelblue
  lightyellow lime limegreen linen magenta maroon mediumaquamarine mediumblue
  mediumorchid mediumpurple mediumseagreen mediumslateblue mediumspringgreen
  mediumturquoise mediumvioletred midnightblue mintcream mistyrose moccasin navajowhite
  navy oldlace olive olivedrab orange orangered orchid palegoldenrod palegreen
  paleturquoise palevioletred papayawhip peachpuff peru pink plum powderblue purple
  rebeccapurple red rosybrown royalblue saddlebrown salmon sandybrown seagreen seashell
  sienna silver skyblue slateblue slategray slategrey snow springgreen steelblue tan teal
  thistle tomato turquoise violet wheat white whitesmoke yellow yellowgreen
  transparent none clear]]):gmatch('%S+') do
  CSS[name] = true
end

local function numbers(s, n)
  local parts = {}
  for p in s:gmatch('[^,%s/]+') do
    if not p:match('^[-+]?%d*%.?%d+%%?$') and not p:match('^[-+]?%d*%.?%d+deg$') then
      return false
    end
    parts[#parts + 1] = p
  end
  return #parts == n or (n == 3 and #parts == 4)
end

-- `SrgbaTuple::from_str` (color-types/src/lib.rs): `#` with 1–4 hex digits per channel,
-- `rgb:`/`rgba:` X11 forms, `hsl:H S L`, then csscolorparser (functions and names).
local function parse_color(s)
  if type(s) ~= 'string' or s == '' or s:find('[\128-\255]') then
    return false
  end
  if s:sub(1, 1) == '#' then
    local digits = (#s - 1) // 3
    if 1 + digits * 3 == #s and digits >= 1 and digits <= 4 and s:sub(2):match('^%x+$') then
      return true
    end
    -- csscolorparser also reads #rgba and #rrggbbaa.
    return (#s == 5 or #s == 9) and s:sub(2):match('^%x+$') ~= nil
  end
  local x11 = s:match('^rgba?:(.*)$')
  if x11 then
    local n = 0
    for field in (x11 .. '/'):gmatch('([^/]*)/') do
      if not field:match('^%x%x?%x?%x?$') then
        return numbers(x11, 4) and s:sub(1, 5) == 'rgba:'
      end
      n = n + 1
    end
    return n == 3 or (n == 4 and s:sub(1, 5) == 'rgba:')
  end
  local h, sat, l = s:match('^hsl:%s*(%S+)%s+(%S+)%s+(%S+)%s*$')
  if h then
    return math.tointeger(tonumber(h)) ~= nil and math.tointeger(tonumber(sat)) ~= nil
      and math.tointeger(tonumber(l)) ~= nil
  end
  local fn, args = s:lower():match('^%s*(%a+)%((.*)%)%s*$')
  if fn then
    local arity = ({ rgb = 3, rgba = 3, hsl = 3, hsla = 3, hwb = 3, hsv = 3, hsva = 3, lab = 3, lch = 3 })[fn]
    return arity ~= nil and numbers(args, arity)
  end
  return CSS[s:lower()] == true
end

wezterm.color = {}

--- `wezterm.color.parse` raises on what `SrgbaTuple::from_str` refuses
--- (lua-api-crates/color-funcs).
function wezterm.color.parse(s)
  if not parse_color(s) then
    error('unknown color name: ' .. tostring(s))
  end
  return s
end

-- wezterm.format ---------------------------------------------------------------------

-- `FormatColor` (lua-api-crates/termwiz-funcs/src/lib.rs): `{ AnsiColor = NAME }`
-- must name a variant or the conversion raises; `{ Color = STRING }` that does not parse
-- is drawn white (`unwrap_or_else` to 0xffffff), silently; or the string 'Default'.
local function color_tag(spec)
  if spec == 'Default' then
    return 'Default'
  end
  if type(spec) ~= 'table' then
    error('wezterm.format: a colour must be a table or "Default", not ' .. type(spec))
  end
  local key, value = next(spec)
  if next(spec, key) ~= nil then
    error('wezterm.format: a colour has one of AnsiColor or Color')
  end
  if key == 'AnsiColor' then
    if not ANSI[value] then
      error('`' .. tostring(value) .. '` is not a valid AnsiColor variant', 0)
    end
    return value
  elseif key == 'Color' and type(value) == 'string' then
    return parse_color(value) and value or '#ffffff'
  end
  error('wezterm.format: unknown colour ' .. tostring(key))
end

--- Renders FormatItems (the `FormatItem` enum: one variant per table, or the string
--- 'ResetAttributes'; anything else fails to convert) with readable markers in place of
--- escapes: `<Red>` for a foreground, `<bg:Red>` for a background, `<reset>`.
function wezterm.format(items)
  if type(items) ~= 'table' then
    error('wezterm.format: expected a table of FormatItems, not ' .. type(items))
  end
  local out = {}
  for _, item in ipairs(items) do
    local key = type(item) == 'table' and next(item)
    if type(item) == 'table' and next(item, key) ~= nil then
      error('wezterm.format: a FormatItem has one variant, not several')
    end
    if item == 'ResetAttributes' then
      out[#out + 1] = '<reset>'
    elseif key == 'Text' then
      if type(item.Text) ~= 'string' then
        error('wezterm.format: Text must be a string')
      end
      out[#out + 1] = item.Text
    elseif key == 'Foreground' then
      out[#out + 1] = '<' .. color_tag(item.Foreground) .. '>'
    elseif key == 'Background' then
      out[#out + 1] = '<bg:' .. color_tag(item.Background) .. '>'
    elseif key ~= 'Attribute' then
      error('wezterm.format: not a FormatItem: ' .. tostring(key or item))
    end
  end
  return table.concat(out)
end

-- Actions ----------------------------------------------------------------------------

-- The KeyAssignment variants the plugin and tests use, with their fields
-- (config/src/keyassignment.rs); `true` marks a required field. A struct variant
-- denies unknown fields; a scalar one takes a value of its type
-- (luahelper/src/enumctor.rs: `UnknownFieldAction::Deny`).
local SPAWN = { args = false, cwd = false, label = false, set_environment_variables = false, domain = false, position = false }
local VARIANTS = {
  SpawnCommandInNewTab = SPAWN,
  SpawnCommandInNewWindow = SPAWN,
  InputSelector = { action = true, title = false, choices = false, fuzzy = false, alphabet = false, description = false, fuzzy_description = false },
  PromptInputLine = { action = true, description = false, prompt = false, initial_value = false },
  ActivateTab = 'number',
  EmitEvent = 'string',
  SpawnTab = 'string',
  CopyTo = 'string',
  ActivateCopyMode = 'unit',
  Nop = 'unit',
}

local function construct(name, args)
  local shape = VARIANTS[name]
  if shape == nil then
    error('`' .. tostring(name) .. '` is not a valid KeyAssignment variant', 2)
  elseif shape == 'unit' then
    return name
  elseif type(shape) == 'string' then
    if type(args) ~= shape then
      error(name .. ' takes a ' .. shape .. ', not ' .. type(args), 2)
    end
    return { [name] = args }
  end
  if type(args) ~= 'table' then
    error(name .. ' takes a table, not ' .. type(args), 2)
  end
  for field in pairs(args) do
    if shape[field] == nil then
      error('`' .. tostring(field) .. '` is not a valid ' .. name .. ' field', 2)
    end
  end
  for field, required in pairs(shape) do
    if required and args[field] == nil then
      error(name .. ' is missing the field `' .. field .. '`', 2)
    end
  end
  if name == 'InputSelector' then
    for _, choice in ipairs(args.choices or {}) do
      for field in pairs(choice) do
        if field ~= 'label' and field ~= 'id' then
          error('`' .. tostring(field) .. '` is not a valid InputSelectorEntry field', 2)
        end
      end
    end
  end
  return { [name] = args }
end

-- `wezterm.action.Name(args)`, `wezterm.action.Unit` and `wezterm.action{ Name = args }`.
wezterm.action = setmetatable({}, {
  __index = function(_, name)
    local shape = VARIANTS[name]
    if shape == 'unit' then
      return name
    elseif shape == nil then
      error('`' .. tostring(name) .. '` is not a valid KeyAssignment variant', 2)
    end
    return function(args)
      return construct(name, args)
    end
  end,
  __call = function(_, t)
    local name, args = next(t)
    return construct(name, args)
  end,
})

-- An `EmitEvent` of a generated `user-defined-N` event, N counting from 0
-- (config/src/lua.rs `wrap_callback`).
local callbacks = 0
function wezterm.action_callback(fn)
  if type(fn) ~= 'function' then
    error('action_callback: expected a function')
  end
  local name = 'user-defined-' .. callbacks
  callbacks = callbacks + 1
  wezterm.on(name, fn)
  return { EmitEvent = name }
end

return wezterm
