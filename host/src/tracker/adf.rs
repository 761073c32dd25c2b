//! Atlassian Document Format (Jira Cloud descriptions and comments) to Markdown.
//!
//! A walker over `serde_json::Value` that never fails: a node it does not know (or a
//! malformed one) contributes the text inside it, so nothing the author wrote is lost.
//! Panels and expands become block quotes with their kind or title in bold.

use serde_json::Value;

/// Markdown for an ADF document (or any node).
pub fn to_markdown(doc: &Value) -> String {
    let text = if node_type(doc) == "doc" {
        blocks(children(doc), "\n\n")
    } else if is_inline(doc) {
        inline(doc)
    } else {
        block(doc)
    };
    text.trim_end().to_owned()
}

fn node_type(node: &Value) -> &str {
    node.get("type").and_then(Value::as_str).unwrap_or("")
}

fn children(node: &Value) -> &[Value] {
    node.get("content")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn attr<'a>(node: &'a Value, name: &str) -> Option<&'a Value> {
    node.get("attrs").and_then(|a| a.get(name))
}

fn attr_str<'a>(node: &'a Value, name: &str) -> Option<&'a str> {
    attr(node, name)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

const INLINE: &[&str] = &[
    "text",
    "hardBreak",
    "mention",
    "inlineCard",
    "emoji",
    "date",
    "status",
    "mediaInline",
    "inlineExtension",
    "placeholder",
];

fn is_inline(node: &Value) -> bool {
    INLINE.contains(&node_type(node)) || node.get("text").is_some_and(Value::is_string)
}

/// Block nodes, rendered and joined by `sep`, empty ones skipped.
fn blocks(nodes: &[Value], sep: &str) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut run: Vec<&Value> = Vec::new();
    // Inline nodes met where blocks are expected (malformed or unknown parents) are
    // kept together as one paragraph.
    let flush = |run: &mut Vec<&Value>, parts: &mut Vec<String>| {
        if !run.is_empty() {
            parts.push(run.drain(..).map(inline).collect());
        }
    };
    for node in nodes {
        if is_inline(node) {
            run.push(node);
            continue;
        }
        flush(&mut run, &mut parts);
        parts.push(block(node));
    }
    flush(&mut run, &mut parts);
    parts.retain(|p| !p.trim().is_empty());
    parts.join(sep)
}

fn inlines(nodes: &[Value]) -> String {
    nodes.iter().map(inline).collect()
}

fn block(node: &Value) -> String {
    let kids = children(node);
    match node_type(node) {
        "paragraph" => inlines(kids),
        "heading" => {
            let level = attr(node, "level")
                .and_then(Value::as_u64)
                .unwrap_or(1)
                .clamp(1, 6);
            format!("{} {}", "#".repeat(level as usize), inlines(kids))
        }
        "bulletList" => list(kids, |_| "- ".to_owned()),
        "orderedList" => {
            let start = attr(node, "order").and_then(Value::as_u64).unwrap_or(1);
            list(kids, |i| format!("{}. ", start + i as u64))
        }
        "taskList" => list(kids, |_| "- ".to_owned()),
        "taskItem" => {
            let done = attr_str(node, "state") == Some("DONE");
            format!("[{}] {}", if done { "x" } else { " " }, blocks(kids, "\n"))
        }
        "decisionList" => list(kids, |_| "- ".to_owned()),
        "decisionItem" => format!("Decision: {}", blocks(kids, "\n")),
        "codeBlock" => {
            let code: String = kids
                .iter()
                .filter_map(|k| k.get("text").and_then(Value::as_str))
                .collect();
            let mut fence = "```".to_owned();
            while code.contains(&fence) {
                fence.push('`');
            }
            let lang = attr_str(node, "language").unwrap_or("");
            format!("{fence}{lang}\n{code}\n{fence}")
        }
        "blockquote" => quote(&blocks(kids, "\n\n")),
        "rule" => "---".to_owned(),
        "panel" => {
            let kind = attr_str(node, "panelType").unwrap_or("info");
            quote(&format!("**{kind}:** {}", blocks(kids, "\n\n")))
        }
        "expand" | "nestedExpand" => {
            let body = blocks(kids, "\n\n");
            match attr_str(node, "title") {
                Some(title) => quote(&format!("**{title}**\n\n{body}")),
                None => quote(&body),
            }
        }
        "table" => table(kids),
        "media" => media(node),
        "blockCard" | "embedCard" => match attr_str(node, "url") {
            Some(url) => format!("<{url}>"),
            None => blocks(kids, "\n\n"),
        },
        // mediaSingle, mediaGroup, layoutSection, layoutColumn, listItem out of place,
        // the extension family and anything unknown: what is inside.
        _ => blocks(kids, "\n\n"),
    }
}

/// Items with their marker; continuation lines indented four spaces (nested lists).
fn list(items: &[Value], marker: impl Fn(usize) -> String) -> String {
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let body = if node_type(item) == "listItem" {
                blocks(children(item), "\n")
            } else {
                block(item)
            };
            let mut out = marker(i);
            for (n, line) in body.lines().enumerate() {
                if n > 0 {
                    out.push('\n');
                    if !line.is_empty() {
                        out.push_str("    ");
                    }
                }
                out.push_str(line);
            }
            out
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn quote(text: &str) -> String {
    text.lines()
        .map(|l| {
            if l.is_empty() {
                ">".to_owned()
            } else {
                format!("> {l}")
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A GFM table; the first row is the header (GFM needs one). Spanned cells are
/// followed by empty ones so columns line up.
fn table(rows: &[Value]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            let mut cells = Vec::new();
            for cell in children(row) {
                let text = blocks(children(cell), "<br>")
                    .replace('\n', "<br>")
                    .replace('|', "\\|");
                cells.push(text);
                let span = attr(cell, "colspan").and_then(Value::as_u64).unwrap_or(1);
                for _ in 1..span.min(64) {
                    cells.push(String::new());
                }
            }
            cells
        })
        .collect();
    let width = rows.iter().map(Vec::len).max().unwrap_or(0);
    if width == 0 {
        return String::new();
    }
    let line = |cells: &[String]| {
        let mut padded: Vec<&str> = cells.iter().map(String::as_str).collect();
        padded.resize(width, "");
        format!("| {} |", padded.join(" | "))
    };
    let mut out = vec![line(&rows[0]), format!("|{}", " --- |".repeat(width))];
    out.extend(rows[1..].iter().map(|r| line(r)));
    out.join("\n")
}

fn media(node: &Value) -> String {
    let name = attr_str(node, "alt")
        .or_else(|| attr_str(node, "id"))
        .unwrap_or("file");
    format!("[attachment: {name}]")
}

fn inline(node: &Value) -> String {
    match node_type(node) {
        "text" => marked(node),
        "hardBreak" => "  \n".to_owned(),
        "mention" => {
            let text = attr_str(node, "text").unwrap_or("someone");
            if text.starts_with('@') {
                text.to_owned()
            } else {
                format!("@{text}")
            }
        }
        "inlineCard" => match attr_str(node, "url") {
            Some(url) => format!("<{url}>"),
            None => String::new(),
        },
        "emoji" => attr_str(node, "text")
            .or_else(|| attr_str(node, "shortName"))
            .unwrap_or("")
            .to_owned(),
        "date" => attr_str(node, "timestamp")
            .and_then(|ms| ms.parse::<i64>().ok())
            .and_then(|ms| time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000)).ok())
            .map(|t| t.date().to_string())
            .unwrap_or_default(),
        "status" => attr_str(node, "text")
            .map(|t| format!("[{t}]"))
            .unwrap_or_default(),
        "mediaInline" => media(node),
        "placeholder" => attr_str(node, "text").unwrap_or("").to_owned(),
        _ => match node.get("text").and_then(Value::as_str) {
            Some(text) => text.to_owned(),
            None => inlines(children(node)),
        },
    }
}

/// A text node with its marks: code innermost, link outermost.
fn marked(node: &Value) -> String {
    let text = node.get("text").and_then(Value::as_str).unwrap_or("");
    let marks: Vec<&Value> = node
        .get("marks")
        .and_then(Value::as_array)
        .map(|m| m.iter().collect())
        .unwrap_or_default();
    let has = |t: &str| marks.iter().any(|m| node_type(m) == t);
    let mut out = text.to_owned();
    if has("code") {
        let tick = if out.contains('`') { "``" } else { "`" };
        out = format!("{tick}{out}{tick}");
    }
    if let Some(sub) = marks.iter().find(|m| node_type(m) == "subsup") {
        let tag = if attr_str(sub, "type") == Some("sup") {
            "sup"
        } else {
            "sub"
        };
        out = format!("<{tag}>{out}</{tag}>");
    }
    for (mark, wrap) in [("em", "*"), ("strong", "**"), ("strike", "~~")] {
        if has(mark) {
            out = format!("{wrap}{out}{wrap}");
        }
    }
    if let Some(href) = marks
        .iter()
        .find(|m| node_type(m) == "link")
        .and_then(|m| attr_str(m, "href"))
    {
        out = format!("[{out}]({href})");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The specification's fixture and the Markdown it must give.
    #[test]
    fn spec_fixture() {
        let doc = json!({"version":1,"type":"doc","content":[
         {"type":"heading","attrs":{"level":2},"content":[{"type":"text","text":"Steps"}]},
         {"type":"paragraph","content":[{"type":"text","text":"Login fails for "},
           {"type":"mention","attrs":{"id":"5b10a2844c20165700ede21g","text":"@Mia Krystof","accessLevel":""}},
           {"type":"text","text":" on "},{"type":"text","text":"Safari","marks":[{"type":"strong"}]},
           {"type":"text","text":", see "},{"type":"text","text":"docs","marks":[{"type":"link","attrs":{"href":"https://example.com/docs"}}]},
           {"type":"hardBreak"},{"type":"text","text":"auth()","marks":[{"type":"code"}]}]},
         {"type":"bulletList","content":[{"type":"listItem","content":[{"type":"paragraph","content":[{"type":"text","text":"open /login"}]},
           {"type":"orderedList","attrs":{"order":1},"content":[{"type":"listItem","content":[{"type":"paragraph","content":[{"type":"text","text":"nested"}]}]}]}]}]},
         {"type":"codeBlock","attrs":{"language":"rust"},"content":[{"type":"text","text":"fn main() {}"}]},
         {"type":"blockquote","content":[{"type":"paragraph","content":[{"type":"text","text":"quoted"}]}]},
         {"type":"rule"},
         {"type":"paragraph","content":[{"type":"inlineCard","attrs":{"url":"https://x.atlassian.net/browse/KEY-1"}}]},
         {"type":"panel","attrs":{"panelType":"info"},"content":[{"type":"paragraph","content":[{"type":"text","text":"heads up"}]}]},
         {"type":"table","attrs":{"isNumberColumnEnabled":false,"layout":"default"},"content":[
          {"type":"tableRow","content":[{"type":"tableHeader","attrs":{},"content":[{"type":"paragraph","content":[{"type":"text","text":"A"}]}]}]},
          {"type":"tableRow","content":[{"type":"tableCell","attrs":{},"content":[{"type":"paragraph","content":[{"type":"text","text":"1"}]}]}]}]}]});
        let want = "## Steps\n\n\
Login fails for @Mia Krystof on **Safari**, see [docs](https://example.com/docs)  \n`auth()`\n\n\
- open /login\n    1. nested\n\n\
```rust\nfn main() {}\n```\n\n\
> quoted\n\n\
---\n\n\
<https://x.atlassian.net/browse/KEY-1>\n\n\
> **info:** heads up\n\n\
| A |\n| --- |\n| 1 |";
        assert_eq!(to_markdown(&doc), want);
    }

    /// Every node type and mark the specification lists, plus ones it does not.
    #[test]
    fn every_node_type() {
        let text = |t: &str| json!({"type":"text","text":t});
        let para = |t: &str| json!({"type":"paragraph","content":[{"type":"text","text":t}]});
        let doc = json!({"type":"doc","version":1,"content":[
            {"type":"expand","attrs":{"title":"Details"},"content":[para("hidden")]},
            {"type":"mediaSingle","content":[{"type":"media","attrs":{"id":"abc","type":"file","collection":"c","alt":"shot.png"}}]},
            {"type":"mediaGroup","content":[{"type":"media","attrs":{"id":"f-1","type":"file"}}]},
            {"type":"taskList","attrs":{"localId":"t"},"content":[
                {"type":"taskItem","attrs":{"state":"DONE"},"content":[text("ship")]},
                {"type":"taskItem","attrs":{"state":"TODO"},"content":[text("test")]}]},
            {"type":"decisionList","content":[{"type":"decisionItem","attrs":{"state":"DECIDED"},"content":[text("use ADF")]}]},
            {"type":"blockCard","attrs":{"url":"https://a.test/card"}},
            {"type":"embedCard","attrs":{"url":"https://a.test/embed","layout":"center"}},
            {"type":"layoutSection","content":[
                {"type":"layoutColumn","attrs":{"width":50},"content":[para("left")]},
                {"type":"layoutColumn","attrs":{"width":50},"content":[para("right")]}]},
            {"type":"extension","attrs":{"extensionKey":"x"}},
            {"type":"bodiedExtension","content":[para("inside extension")]},
            {"type":"orderedList","attrs":{"order":3},"content":[
                {"type":"listItem","content":[para("three")]},
                {"type":"listItem","content":[para("four")]}]},
            {"type":"table","content":[
                {"type":"tableRow","content":[
                    {"type":"tableHeader","attrs":{"colspan":2},"content":[para("wide")]}]},
                {"type":"tableRow","content":[
                    {"type":"tableCell","content":[para("a|b")]},
                    {"type":"tableCell","content":[{"type":"nestedExpand","attrs":{"title":"more"},"content":[para("x")]}]}]}]},
            {"type":"paragraph","content":[
                {"type":"emoji","attrs":{"shortName":":smile:","text":"😄"}},
                text(" "),
                {"type":"date","attrs":{"timestamp":"1700000000000"}},
                text(" "),
                {"type":"status","attrs":{"text":"IN REVIEW","color":"blue"}},
                text(" "),
                {"type":"mediaInline","attrs":{"id":"m-1","alt":"log.txt"}},
                text(" "),
                {"type":"text","text":"gone","marks":[{"type":"strike"}]},
                {"type":"text","text":"u","marks":[{"type":"underline"},{"type":"textColor","attrs":{"color":"#f00"}},{"type":"backgroundColor","attrs":{"color":"#0f0"}}]},
                {"type":"text","text":"2","marks":[{"type":"subsup","attrs":{"type":"sup"}}]},
                {"type":"text","text":"i","marks":[{"type":"em"},{"type":"annotation","attrs":{"id":"a"}}]},
                {"type":"inlineExtension","attrs":{"extensionKey":"y"}},
                {"type":"futureInline","content":[text("kept inline")]}]},
            {"type":"paragraph","marks":[{"type":"alignment","attrs":{"align":"center"}},{"type":"indentation","attrs":{"level":1}}],"content":[text("centred")]},
            {"type":"futureBlock","attrs":{},"content":[para("kept block"),{"type":"weird","text":"raw text"}]},
            {"type":"heading","attrs":{"level":9},"content":[text("deep")]},
            {"type":"codeBlock","content":[text("has ``` inside")]},
            {"content":"not a list"},
            "not a node",
        ]});
        let md = to_markdown(&doc);
        for want in [
            "> **Details**\n>\n> hidden",
            "[attachment: shot.png]",
            "[attachment: f-1]",
            "- [x] ship\n- [ ] test",
            "- Decision: use ADF",
            "<https://a.test/card>",
            "<https://a.test/embed>",
            "left\n\nright",
            "inside extension",
            "3. three\n4. four",
            "| wide |  |\n| --- | --- |\n| a\\|b | > **more**<br>><br>> x |",
            "😄 2023-11-14 [IN REVIEW] [attachment: log.txt] ~~gone~~u<sup>2</sup>*i*kept inline",
            "centred",
            "kept block\n\nraw text",
            "###### deep",
            "````\nhas ``` inside\n````",
        ] {
            assert!(md.contains(want), "missing {want:?} in:\n{md}");
        }
    }

    #[test]
    fn never_fails_on_garbage() {
        for v in [
            json!(null),
            json!(42),
            json!("s"),
            json!([1, 2]),
            json!({"type": 3}),
        ] {
            let _ = to_markdown(&v);
        }
        assert_eq!(to_markdown(&json!({"type":"text","text":"solo"})), "solo");
    }
}
