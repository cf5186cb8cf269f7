//! Topology files: import and export of edge lists, GraphML (as NetworkX and Warnet's older releases
//! write it) and Graphviz DOT, as text in and text out, with the line and column of every refusal.

use std::collections::HashMap;
use std::fmt;

use crate::core::names::shown;
use crate::core::topology::{Edge, NodeId};

/// A file format for topologies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// One `a b` pair per line (`a` dials `b`), `#` comments; a line with one name declares a node.
    EdgeList,
    /// GraphML: `<node id=..>` and `<edge source=.. target=..>` of the first `<graph>`.
    GraphMl,
    /// Graphviz DOT: `graph` or `digraph` with `--`/`->` edges and node statements.
    Dot,
}

impl Format {
    /// Every format, in the order of [`Format::name`]'s list.
    pub const ALL: [Format; 3] = [Format::EdgeList, Format::GraphMl, Format::Dot];

    /// The format a file name's extension stands for: `.txt`, `.edges`, `.edgelist` for edge lists,
    /// `.graphml`, `.xml` for GraphML and `.dot`, `.gv` for DOT (any case).
    pub fn from_path_name(file_name: &str) -> Option<Format> {
        let (_, extension) = file_name.rsplit_once('.')?;
        match extension.to_ascii_lowercase().as_str() {
            "txt" | "edges" | "edgelist" => Some(Format::EdgeList),
            "graphml" | "xml" => Some(Format::GraphMl),
            "dot" | "gv" => Some(Format::Dot),
            _ => None,
        }
    }

    /// The spelling on the command line: `edgelist`, `graphml` or `dot`.
    pub fn name(self) -> &'static str {
        match self {
            Format::EdgeList => "edgelist",
            Format::GraphMl => "graphml",
            Format::Dot => "dot",
        }
    }

    /// The format spelled `name` (see [`Format::name`]).
    pub fn from_name(name: &str) -> Option<Format> {
        Format::ALL.into_iter().find(|f| f.name() == name)
    }
}

/// A topology read from a file: node names and edges between their indices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    /// Node names: the nodes the file declares, in order, then those only its edges name, in order
    /// of first appearance. Edge lists declare nothing, so there it is first appearance throughout.
    pub nodes: Vec<String>,
    /// Edges as indices into `nodes`, dialer first (the first-named end, the source in GraphML).
    pub edges: Vec<(usize, usize)>,
}

/// Why a topology file was refused, and where (1-based line and column, in characters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportError {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// What is wrong, in words for the user.
    pub message: String,
}

impl fmt::Display for ImportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {}, column {}: {}",
            self.line, self.column, self.message
        )
    }
}

impl std::error::Error for ImportError {}

/// A 1-based line and column.
type Location = (usize, usize);

fn refuse(at: Location, message: impl Into<String>) -> ImportError {
    ImportError {
        line: at.0,
        column: at.1,
        message: message.into(),
    }
}

/// Reads a topology. Self-loops and edges that repeat a pair (in either direction) are refused with
/// their location, as is anything the format's syntax does not allow.
pub fn import(text: &str, format: Format) -> Result<Imported, ImportError> {
    // Editors on Windows like to start a file with a byte-order mark.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    match format {
        Format::EdgeList => edge_list(text),
        Format::GraphMl => graphml(text),
        Format::Dot => dot::parse(text),
    }
}

/// Collects names and edges in the order a file gives them.
#[derive(Default)]
struct Builder {
    names: Vec<String>,
    index: HashMap<String, usize>,
    declared: Vec<usize>,
    is_declared: Vec<bool>,
    edges: Vec<(usize, usize)>,
    first: HashMap<(usize, usize), Location>,
}

impl Builder {
    fn id(&mut self, name: &str) -> usize {
        if let Some(&id) = self.index.get(name) {
            return id;
        }
        let id = self.names.len();
        self.names.push(name.to_owned());
        self.index.insert(name.to_owned(), id);
        self.is_declared.push(false);
        id
    }

    fn is_declared(&self, name: &str) -> bool {
        self.index.get(name).is_some_and(|&id| self.is_declared[id])
    }

    /// Declares a node; declaring it again is not an error here.
    fn declare(&mut self, name: &str) {
        let id = self.id(name);
        if !std::mem::replace(&mut self.is_declared[id], true) {
            self.declared.push(id);
        }
    }

    fn edge(&mut self, from: &str, to: &str, at: Location) -> Result<(), ImportError> {
        if from == to {
            return Err(refuse(
                at,
                format!(
                    "self-loop on `{}`: a node cannot peer with itself",
                    shown(from)
                ),
            ));
        }
        let (a, b) = (self.id(from), self.id(to));
        if let Some(&(line, column)) = self.first.get(&(a.min(b), a.max(b))) {
            return Err(refuse(
                at,
                format!(
                    "the edge `{}` - `{}` repeats the one at line {line}, column {column}; \
                     peerings are undirected, so list each pair once",
                    shown(from),
                    shown(to)
                ),
            ));
        }
        self.first.insert((a.min(b), a.max(b)), at);
        self.edges.push((a, b));
        Ok(())
    }

    /// Declared nodes first, then the others in order of appearance.
    fn finish(self) -> Imported {
        let mut order = self.declared.clone();
        order.extend((0..self.names.len()).filter(|&id| !self.is_declared[id]));
        let mut position = vec![0; order.len()];
        for (new, &old) in order.iter().enumerate() {
            position[old] = new;
        }
        let mut names: Vec<Option<String>> = self.names.into_iter().map(Some).collect();
        Imported {
            nodes: order.iter().filter_map(|&old| names[old].take()).collect(),
            edges: self
                .edges
                .iter()
                .map(|&(a, b)| (position[a], position[b]))
                .collect(),
        }
    }
}

/// Whitespace-separated tokens of a line with their 1-based columns, up to a `#` comment.
fn tokens(line: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut start: Option<(usize, usize)> = None;
    let mut column = 0;
    for (offset, c) in line.char_indices() {
        column += 1;
        if c == '#' || c.is_whitespace() {
            if let Some((col, from)) = start.take() {
                out.push((col, &line[from..offset]));
            }
            if c == '#' {
                return out;
            }
        } else if start.is_none() {
            start = Some((column, offset));
        }
    }
    if let Some((col, from)) = start {
        out.push((col, &line[from..]));
    }
    out
}

fn edge_list(text: &str) -> Result<Imported, ImportError> {
    let mut builder = Builder::default();
    for (i, line) in text.lines().enumerate() {
        let tokens = tokens(line);
        match tokens.as_slice() {
            [] => {}
            [(_, name)] => {
                builder.id(name);
            }
            [(column, from), (_, to), rest @ ..] => {
                // NetworkX writes edge data after the names: `a b {}`, `a b {'weight': 1}`, `a b 3`.
                if let Some(&(extra, word)) = rest.first() {
                    if !word.starts_with('{') && word.parse::<f64>().is_err() {
                        return Err(refuse(
                            (i + 1, extra),
                            format!(
                                "expected two node names on the line, found a third, `{}`",
                                shown(word)
                            ),
                        ));
                    }
                }
                builder.edge(from, to, (i + 1, *column))?;
            }
        }
    }
    Ok(builder.finish())
}

fn graphml(text: &str) -> Result<Imported, ImportError> {
    let doc = roxmltree::Document::parse(text).map_err(|e| {
        let pos = e.pos();
        let message = e.to_string().replace(&format!(" at {pos}"), "");
        refuse((pos.row as usize, pos.col as usize), message)
    })?;
    // Not `doc.text_pos_at`, which counts from the start of the text each time: quadratic over a file.
    let positions = Positions::new(text);
    let at = |node: roxmltree::Node| positions.of(node.range().start);
    let root = doc.root_element();
    if root.tag_name().name() != "graphml" {
        return Err(refuse(
            at(root),
            format!(
                "expected a <graphml> document, found <{}>",
                root.tag_name().name()
            ),
        ));
    }
    let mut graphs = root.children().filter(|c| is(c, "graph"));
    let graph = graphs
        .next()
        .ok_or_else(|| refuse(at(root), "the GraphML document has no <graph>"))?;
    if let Some(extra) = graphs.next() {
        return Err(refuse(at(extra), "only one <graph> per file is supported"));
    }
    let mut builder = Builder::default();
    for child in graph.children().filter(roxmltree::Node::is_element) {
        match child.tag_name().name() {
            "node" => graphml_node(&mut builder, child, at(child))?,
            "edge" => {
                let from = required(child, "source", at(child))?;
                let to = required(child, "target", at(child))?;
                builder.edge(from, to, at(child))?;
            }
            "hyperedge" => return Err(refuse(at(child), "hyperedges are not supported")),
            _ => {}
        }
    }
    Ok(builder.finish())
}

/// Lines and columns of byte offsets in a text, counted as roxmltree counts them (a line ends at `\n`,
/// columns are characters). Each lookup goes on from the one before, so offsets asked in increasing
/// order (elements in document order) cost one pass over the text in all; an earlier offset starts
/// again from the beginning.
struct Positions<'t> {
    text: &'t str,
    /// The last offset looked up, and its line and column.
    last: std::cell::Cell<(usize, usize, usize)>,
}

impl<'t> Positions<'t> {
    fn new(text: &'t str) -> Self {
        Positions {
            text,
            last: std::cell::Cell::new((0, 1, 1)),
        }
    }

    /// The 1-based line and column of byte `offset` (clamped to the text, rounded down to a character).
    fn of(&self, offset: usize) -> Location {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let (mut from, mut line, mut column) = self.last.get();
        if offset < from {
            (from, line, column) = (0, 1, 1);
        }
        for c in self.text[from..offset].chars() {
            if c == '\n' {
                line += 1;
                column = 1;
            } else {
                column += 1;
            }
        }
        self.last.set((offset, line, column));
        (line, column)
    }
}

fn is(node: &roxmltree::Node, tag: &str) -> bool {
    node.is_element() && node.tag_name().name() == tag
}

fn required<'a>(
    node: roxmltree::Node<'a, '_>,
    attribute: &str,
    at: Location,
) -> Result<&'a str, ImportError> {
    node.attribute(attribute).ok_or_else(|| {
        refuse(
            at,
            format!(
                "<{}> has no `{attribute}` attribute",
                node.tag_name().name()
            ),
        )
    })
}

fn graphml_node(
    builder: &mut Builder,
    node: roxmltree::Node,
    at: Location,
) -> Result<(), ImportError> {
    let id = required(node, "id", at)?;
    if node.children().any(|c| is(&c, "graph")) {
        return Err(refuse(
            at,
            format!(
                "node `{}` holds a nested graph, which is not supported",
                shown(id)
            ),
        ));
    }
    if builder.is_declared(id) {
        return Err(refuse(
            at,
            format!("node `{}` is declared twice", shown(id)),
        ));
    }
    builder.declare(id);
    Ok(())
}

/// Writes a topology; `edges` index into `names` (an index outside it is written as the number).
///
/// Edge lists declare, one name a line, the shortest run of leading nodes that keeps the order of
/// `names` and every isolated node, then list `dialer peer` pairs. GraphML is an undirected graph
/// whose node ids are the names and whose edge sources are the dialers. DOT is `graph regbox`,
/// every node declared, then `dialer -- peer` edges, ids quoted where DOT needs it. Names with
/// whitespace or `#` do not survive an edge list, nor names ending in a backslash a DOT file.
pub fn export(names: &[String], edges: &[Edge], format: Format) -> String {
    let name = |i: NodeId| names.get(i).cloned().unwrap_or_else(|| i.to_string());
    match format {
        Format::EdgeList => export_edge_list(names, edges, &name),
        Format::GraphMl => {
            let mut out = String::from(GRAPHML_HEAD);
            for n in names {
                out += &format!("    <node id=\"{}\"/>\n", xml_escape(n));
            }
            for e in edges {
                out += &format!(
                    "    <edge source=\"{}\" target=\"{}\"/>\n",
                    xml_escape(&name(e.from)),
                    xml_escape(&name(e.to))
                );
            }
            out + "  </graph>\n</graphml>\n"
        }
        Format::Dot => {
            let mut out = String::from("graph regbox {\n");
            for n in names {
                out += &format!("  {};\n", dot::quoted(n));
            }
            for e in edges {
                let (from, to) = (dot::quoted(&name(e.from)), dot::quoted(&name(e.to)));
                out += &format!("  {from} -- {to};\n");
            }
            out + "}\n"
        }
    }
}

const GRAPHML_HEAD: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<graphml xmlns="http://graphml.graphdrawing.org/xmlns" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:schemaLocation="http://graphml.graphdrawing.org/xmlns http://graphml.graphdrawing.org/xmlns/1.0/graphml.xsd">
  <graph id="regbox" edgedefault="undirected">
"#;

fn export_edge_list(names: &[String], edges: &[Edge], name: &dyn Fn(NodeId) -> String) -> String {
    let mut out = format!(
        "# {} nodes, {} edges; `a b` means a dials b, a lone name declares a node\n",
        names.len(),
        edges.len()
    );
    for n in &names[..declared_prefix(names.len(), edges)] {
        out += &format!("{n}\n");
    }
    for e in edges {
        out += &format!("{} {}\n", name(e.from), name(e.to));
    }
    out
}

/// How many leading nodes an edge list must declare so that reading it back gives nodes `0..n` in
/// order: all up to the last isolated node at least, more while the edges name nodes out of order.
fn declared_prefix(n: usize, edges: &[Edge]) -> usize {
    let mut seen = vec![false; n];
    let mut appearance = Vec::with_capacity(n);
    for v in edges.iter().flat_map(|e| [e.from, e.to]) {
        if v < n && !std::mem::replace(&mut seen[v], true) {
            appearance.push(v);
        }
    }
    (0..=n)
        .find(|&p| {
            let rest: Vec<NodeId> = appearance.iter().copied().filter(|&v| v >= p).collect();
            rest.len() == n - p && rest.iter().enumerate().all(|(i, &v)| v == p + i)
        })
        .unwrap_or(n)
}

/// Text made safe for XML character data and attribute values.
pub(crate) fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            _ => out.push(c),
        }
    }
    out
}

/// The DOT language: a lexer, a parser for the statements a topology uses, and id quoting.
mod dot {
    use super::{refuse, Builder, ImportError, Imported, Location};
    use crate::core::names::shown;

    const KEYWORDS: [&str; 6] = ["strict", "graph", "digraph", "node", "edge", "subgraph"];

    #[derive(Debug, Clone, PartialEq)]
    enum Tok {
        /// An id: plain word, numeral, quoted string or HTML string; the flag says it was quoted.
        Id(String, bool),
        Punct(char),
        /// `--` or `->`.
        EdgeOp,
        Eof,
    }

    impl Tok {
        fn keyword(&self, word: &str) -> bool {
            matches!(self, Tok::Id(s, false) if s.eq_ignore_ascii_case(word))
        }

        fn describe(&self) -> String {
            match self {
                Tok::Id(s, _) => format!("`{}`", shown(s)),
                Tok::Punct(c) => format!("`{c}`"),
                Tok::EdgeOp => "an edge operator".to_owned(),
                Tok::Eof => "the end of the file".to_owned(),
            }
        }
    }

    /// `name` as a DOT id: bare when it is a plain word or numeral and no keyword, else quoted.
    pub(super) fn quoted(name: &str) -> String {
        let word = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        let numeral = !name.is_empty() && name.chars().all(|c| c.is_ascii_digit());
        let keyword = KEYWORDS.iter().any(|k| k.eq_ignore_ascii_case(name));
        if (word || numeral) && !keyword {
            name.to_owned()
        } else {
            format!("\"{}\"", name.replace('"', "\\\""))
        }
    }

    struct Lexer {
        chars: Vec<char>,
        pos: usize,
        line: usize,
        column: usize,
    }

    impl Lexer {
        fn peek(&self, ahead: usize) -> Option<char> {
            self.chars.get(self.pos + ahead).copied()
        }

        fn bump(&mut self) -> Option<char> {
            let c = self.peek(0)?;
            self.pos += 1;
            if c == '\n' {
                self.line += 1;
                self.column = 1;
            } else {
                self.column += 1;
            }
            Some(c)
        }

        fn here(&self) -> Location {
            (self.line, self.column)
        }

        /// Skips whitespace and comments; refuses a `/*` that never closes.
        fn skip(&mut self) -> Result<(), ImportError> {
            loop {
                match (self.peek(0), self.peek(1)) {
                    (Some(c), _) if c.is_whitespace() => {}
                    (Some('#'), _) | (Some('/'), Some('/')) => {
                        while self.peek(0).is_some_and(|c| c != '\n') {
                            self.bump();
                        }
                        continue;
                    }
                    (Some('/'), Some('*')) => {
                        let start = self.here();
                        self.bump();
                        self.bump();
                        while (self.peek(0), self.peek(1)) != (Some('*'), Some('/')) {
                            if self.bump().is_none() {
                                return Err(refuse(start, "this /* comment is never closed"));
                            }
                        }
                        self.bump();
                    }
                    _ => return Ok(()),
                }
                self.bump();
            }
        }

        /// A quoted string after its opening quote: `\"` is a quote, a backslash before a newline
        /// continues the line, any other backslash stays.
        fn quoted(&mut self, start: Location) -> Result<Tok, ImportError> {
            let mut text = String::new();
            loop {
                match self.bump() {
                    None => return Err(refuse(start, "this quoted string is never closed")),
                    Some('"') => return Ok(Tok::Id(text, true)),
                    Some('\\') if self.peek(0) == Some('"') => {
                        self.bump();
                        text.push('"');
                    }
                    Some('\\') if self.peek(0) == Some('\n') => {
                        self.bump();
                    }
                    Some(c) => text.push(c),
                }
            }
        }

        /// An HTML string after its opening `<`, up to the matching `>`.
        fn html(&mut self, start: Location) -> Result<Tok, ImportError> {
            let (mut text, mut depth) = (String::new(), 1);
            loop {
                let c = self
                    .bump()
                    .ok_or_else(|| refuse(start, "this <HTML> string is never closed"))?;
                depth += usize::from(c == '<');
                depth -= usize::from(c == '>');
                if depth == 0 {
                    return Ok(Tok::Id(text, true));
                }
                text.push(c);
            }
        }

        fn word(&mut self) -> Tok {
            let mut text = String::new();
            if self.peek(0) == Some('-') {
                self.bump();
                text.push('-');
            }
            while let Some(c) = self
                .peek(0)
                .filter(|&c| c.is_alphanumeric() || c == '_' || c == '.' || !c.is_ascii())
            {
                self.bump();
                text.push(c);
            }
            Tok::Id(text, false)
        }

        fn token(&mut self) -> Result<(Tok, Location), ImportError> {
            self.skip()?;
            let at = self.here();
            let tok = match (self.peek(0), self.peek(1)) {
                (None, _) => Tok::Eof,
                (Some('-'), Some('-' | '>')) => {
                    self.bump();
                    self.bump();
                    Tok::EdgeOp
                }
                (Some('-'), Some(c)) if c.is_ascii_digit() || c == '.' => self.word(),
                (Some('"'), _) => {
                    self.bump();
                    self.quoted(at)?
                }
                (Some('<'), _) => {
                    self.bump();
                    self.html(at)?
                }
                (Some(c), _) if "{}[];,=:".contains(c) => {
                    self.bump();
                    Tok::Punct(c)
                }
                (Some(c), _) if c.is_alphanumeric() || c == '_' || c == '.' || !c.is_ascii() => {
                    self.word()
                }
                (Some(c), _) => {
                    return Err(refuse(
                        at,
                        format!("unexpected character `{}`", c.escape_debug()),
                    ))
                }
            };
            Ok((tok, at))
        }
    }

    fn lex(text: &str) -> Result<Vec<(Tok, Location)>, ImportError> {
        let mut lexer = Lexer {
            chars: text.chars().collect(),
            pos: 0,
            line: 1,
            column: 1,
        };
        let mut out = Vec::new();
        loop {
            let (tok, at) = lexer.token()?;
            let end = tok == Tok::Eof;
            out.push((tok, at));
            if end {
                return Ok(out);
            }
        }
    }

    struct Parser {
        tokens: Vec<(Tok, Location)>,
        pos: usize,
        builder: Builder,
    }

    /// Reads one `[strict] graph|digraph [id] { ... }`.
    pub(super) fn parse(text: &str) -> Result<Imported, ImportError> {
        let mut p = Parser {
            tokens: lex(text)?,
            pos: 0,
            builder: Builder::default(),
        };
        p.header()?;
        p.statements()?;
        let (tok, at) = p.next();
        if tok != Tok::Eof {
            return Err(refuse(
                at,
                format!(
                    "expected the end of the file after the graph, found {}; \
                     only one graph per file is supported",
                    tok.describe()
                ),
            ));
        }
        Ok(p.builder.finish())
    }

    impl Parser {
        /// The current token; the lexer always ends the list with `Eof`, which stays current.
        fn current(&self) -> (Tok, Location) {
            let last = self.tokens.len().saturating_sub(1);
            self.tokens
                .get(self.pos.min(last))
                .cloned()
                .unwrap_or((Tok::Eof, (1, 1)))
        }

        fn peek(&self) -> Tok {
            self.current().0
        }

        fn next(&mut self) -> (Tok, Location) {
            let token = self.current();
            self.pos += 1;
            token
        }

        fn expected(what: &str, (tok, at): (Tok, Location)) -> ImportError {
            refuse(at, format!("expected {what}, found {}", tok.describe()))
        }

        fn header(&mut self) -> Result<(), ImportError> {
            if self.peek().keyword("strict") {
                self.next();
            }
            let token = self.next();
            if !token.0.keyword("graph") && !token.0.keyword("digraph") {
                return Err(Self::expected("`graph` or `digraph`", token));
            }
            if matches!(self.peek(), Tok::Id(..)) {
                self.next();
            }
            match self.next() {
                (Tok::Punct('{'), _) => Ok(()),
                token => Err(Self::expected("`{` to open the graph", token)),
            }
        }

        fn statements(&mut self) -> Result<(), ImportError> {
            loop {
                let (tok, at) = self.current();
                match tok {
                    Tok::Punct('}') => {
                        self.next();
                        return Ok(());
                    }
                    Tok::Punct(';') => {
                        self.next();
                    }
                    Tok::Punct('{') => return Err(no_subgraphs(at)),
                    _ if tok.keyword("subgraph") => return Err(no_subgraphs(at)),
                    _ if ["graph", "node", "edge"].iter().any(|k| tok.keyword(k)) => {
                        self.next();
                        if self.peek() != Tok::Punct('[') {
                            return Err(keyword_as_name(&tok, at));
                        }
                        self.attributes()?;
                    }
                    Tok::Id(..) => self.statement()?,
                    Tok::Eof => return Err(refuse(at, "the graph is never closed; expected `}`")),
                    _ => return Err(Self::expected("a statement", (tok, at))),
                }
            }
        }

        /// A node statement, an edge chain or an `id = value` graph attribute.
        fn statement(&mut self) -> Result<(), ImportError> {
            let (mut from, mut at) = self.node()?;
            if self.peek() == Tok::Punct('=') {
                self.next();
                return match self.next() {
                    (Tok::Id(..), _) => Ok(()),
                    token => Err(Self::expected("a value after `=`", token)),
                };
            }
            if self.peek() != Tok::EdgeOp {
                self.builder.declare(&from);
                return self.attributes();
            }
            while self.peek() == Tok::EdgeOp {
                self.next();
                let (tok, next_at) = self.current();
                if tok == Tok::Punct('{') || tok.keyword("subgraph") {
                    return Err(no_subgraphs(next_at));
                }
                let (to, to_at) = self.node()?;
                self.builder.edge(&from, &to, at)?;
                (from, at) = (to, to_at);
            }
            self.attributes()
        }

        /// A node id with an optional `:port[:compass]`, which is ignored.
        fn node(&mut self) -> Result<(String, Location), ImportError> {
            let (name, at) = match self.next() {
                (tok, at) if KEYWORDS.iter().any(|k| tok.keyword(k)) => {
                    return Err(keyword_as_name(&tok, at));
                }
                (Tok::Id(name, _), at) => (name, at),
                token => return Err(Self::expected("a node name", token)),
            };
            for _ in 0..2 {
                if self.peek() != Tok::Punct(':') {
                    break;
                }
                self.next();
                if let token @ (Tok::Punct(_) | Tok::EdgeOp | Tok::Eof, _) = self.next() {
                    return Err(Self::expected("a port name after `:`", token));
                }
            }
            Ok((name, at))
        }

        /// Skips `[...]` lists, which only style the graph.
        fn attributes(&mut self) -> Result<(), ImportError> {
            while self.peek() == Tok::Punct('[') {
                let (_, start) = self.next();
                loop {
                    match self.next().0 {
                        Tok::Punct(']') => break,
                        Tok::Eof => {
                            return Err(refuse(start, "this attribute list is never closed"))
                        }
                        _ => {}
                    }
                }
            }
            Ok(())
        }
    }

    fn keyword_as_name(tok: &Tok, at: Location) -> ImportError {
        let message = format!(
            "{} is a DOT keyword; quote it to use it as a node name",
            tok.describe()
        );
        refuse(at, message)
    }

    fn no_subgraphs(at: Location) -> ImportError {
        refuse(
            at,
            "subgraphs are not supported; write each edge as `a -- b`",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn imported(nodes: &[&str], edges: &[(usize, usize)]) -> Imported {
        Imported {
            nodes: names(nodes),
            edges: edges.to_vec(),
        }
    }

    fn error(text: &str, format: Format) -> (usize, usize, String) {
        let e = import(text, format).unwrap_err();
        (e.line, e.column, e.message)
    }

    #[test]
    fn formats_by_extension_and_name() {
        assert_eq!(Format::from_path_name("lab.edges"), Some(Format::EdgeList));
        assert_eq!(
            Format::from_path_name("dir.x/net.EDGELIST"),
            Some(Format::EdgeList)
        );
        assert_eq!(Format::from_path_name("a.txt"), Some(Format::EdgeList));
        assert_eq!(
            Format::from_path_name("warnet.graphml"),
            Some(Format::GraphMl)
        );
        assert_eq!(Format::from_path_name("g.xml"), Some(Format::GraphMl));
        assert_eq!(Format::from_path_name("g.gv"), Some(Format::Dot));
        assert_eq!(Format::from_path_name("g.dot"), Some(Format::Dot));
        assert_eq!(Format::from_path_name("graph"), None);
        assert_eq!(Format::from_path_name("g.json"), None);
        for f in Format::ALL {
            assert_eq!(Format::from_name(f.name()), Some(f));
        }
    }

    #[test]
    fn edge_list_reads_pairs_comments_and_lone_names() {
        let text = "# a triangle\n\nb a\n  a\tc # trailing\nd\nc b {'weight': 2}\nb d 3.5\n";
        let got = import(text, Format::EdgeList).unwrap();
        assert_eq!(
            got,
            imported(&["b", "a", "c", "d"], &[(0, 1), (1, 2), (2, 0), (0, 3)])
        );
    }

    #[test]
    fn edge_list_errors_have_locations() {
        assert_eq!(
            error("a b\n  c c\n", Format::EdgeList),
            (
                2,
                3,
                "self-loop on `c`: a node cannot peer with itself".into()
            )
        );
        assert_eq!(
            error("a b\nb c\n b a\n", Format::EdgeList),
            (
                3,
                2,
                "the edge `b` - `a` repeats the one at line 1, column 1; peerings are undirected, \
                 so list each pair once"
                    .into()
            )
        );
        assert_eq!(
            error("a b c\n", Format::EdgeList),
            (
                1,
                5,
                "expected two node names on the line, found a third, `c`".into()
            )
        );
    }

    const NETWORKX: &str = r#"<?xml version='1.0' encoding='utf-8'?>
<graphml xmlns="http://graphml.graphdrawing.org/xmlns" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:schemaLocation="http://graphml.graphdrawing.org/xmlns http://graphml.graphdrawing.org/xmlns/1.0/graphml.xsd">
  <key id="d1" for="edge" attr.name="channel_open" attr.type="string" />
  <key id="d0" for="node" attr.name="version" attr.type="string" />
  <graph edgedefault="directed">
    <node id="0">
      <data key="d0">27.0</data>
    </node>
    <node id="1">
      <data key="d0">26.0</data>
    </node>
    <node id="2" />
    <edge source="0" target="1">
      <data key="d1">--local_amt=100000</data>
    </edge>
    <edge source="2" target="0" />
    <edge source="1" target="3" />
  </graph>
</graphml>
"#;

    #[test]
    fn graphml_as_networkx_writes_it() {
        let got = import(NETWORKX, Format::GraphMl).unwrap();
        assert_eq!(
            got,
            imported(&["0", "1", "2", "3"], &[(0, 1), (2, 0), (1, 3)])
        );
    }

    /// The positions are roxmltree's own, for every element, whatever the order of the lookups.
    #[test]
    fn graphml_positions_match_roxmltree() {
        let text = "<graphml>\r\n<graph><node id=\"é\"/>  <node id=\"日本\"/>\n\n\t<edge source=\"é\" \
                    target=\"日本\"/><!-- ü --><edge\nsource=\"a\" target=\"b\"/></graph>\n</graphml>";
        let doc = roxmltree::Document::parse(text).unwrap();
        let positions = Positions::new(text);
        let starts: Vec<usize> = doc.descendants().map(|n| n.range().start).collect();
        assert!(starts.len() > 6);
        let expected = |offset: usize| {
            let p = doc.text_pos_at(offset);
            (p.row as usize, p.col as usize)
        };
        for &offset in starts.iter().chain(starts.iter().rev()) {
            assert_eq!(positions.of(offset), expected(offset), "at byte {offset}");
        }
        for offset in (0..=text.len() + 3).filter(|&o| o > text.len() || text.is_char_boundary(o)) {
            assert_eq!(
                positions.of(offset),
                expected(offset.min(text.len())),
                "at byte {offset}"
            );
        }
        // Inside a character: the position of that character.
        let inside = text.find('日').unwrap() + 1;
        assert_eq!(positions.of(inside), expected(inside - 1));
    }

    /// GraphML on one line of about 0.9 MiB: `n` nodes, each joined to the next three, then an edge that
    /// repeats the first one. Returns the text and the columns of the first edge and of its repeat.
    fn one_line_graphml(n: usize) -> (String, usize, usize) {
        use std::fmt::Write as _;
        let mut text = String::from(
            r#"<?xml version="1.0"?><graphml xmlns="http://graphml.graphdrawing.org/xmlns"><graph edgedefault="undirected">"#,
        );
        for i in 0..n {
            write!(text, r#"<node id="n{i}"/>"#).unwrap();
        }
        // All ASCII: a column is the byte offset plus one.
        let first = text.len() + 1;
        for i in 0..n {
            for d in 1..=3 {
                write!(text, r#"<edge source="n{i}" target="n{}"/>"#, (i + d) % n).unwrap();
            }
        }
        let repeat = text.len() + 1;
        text.push_str(r#"<edge source="n1" target="n0"/></graph></graphml>"#);
        (text, first, repeat)
    }

    /// Every element's position is found by going on from the one before, not by counting from the
    /// start of the text again: a one-line file of 0.9 MiB with 30,000 elements is read at once (the
    /// count from the start took minutes), and the positions deep in it are right.
    #[test]
    fn graphml_positions_deep_in_a_one_line_file() {
        let (text, first, repeat) = one_line_graphml(7500);
        assert!((900_000..1 << 20).contains(&text.len()), "{}", text.len());
        let (line, column, message) = error(&text, Format::GraphMl);
        assert_eq!((line, column), (1, repeat));
        assert!(
            message.contains(&format!("repeats the one at line 1, column {first};")),
            "{message}"
        );
    }

    #[test]
    fn graphml_errors_have_locations() {
        let dup = NETWORKX.replace(
            r#"<edge source="1" target="3" />"#,
            r#"<edge source="1" target="0" />"#,
        );
        let (line, column, message) = error(&dup, Format::GraphMl);
        assert_eq!((line, column), (17, 5));
        assert!(
            message.contains("repeats the one at line 13, column 5"),
            "{message}"
        );
        let looped = NETWORKX.replace(r#"target="3""#, r#"target="1""#);
        assert_eq!(error(&looped, Format::GraphMl).0, 17);
        let unclosed = error(
            "<graphml>\n  <graph>\n    <node id='a'>\n</graphml>",
            Format::GraphMl,
        );
        assert_eq!(
            unclosed,
            (4, 1, "expected 'node' tag, not 'graphml'".into())
        );
        assert_eq!(
            error(
                "<graphml>\n <graph>\n  <node/>\n </graph>\n</graphml>",
                Format::GraphMl
            ),
            (3, 3, "<node> has no `id` attribute".into())
        );
        assert_eq!(
            error(
                "<graphml><graph><node id='a'/><node id='a'/></graph></graphml>",
                Format::GraphMl
            ),
            (1, 31, "node `a` is declared twice".into())
        );
        assert_eq!(
            error("<graphml/>", Format::GraphMl),
            (1, 1, "the GraphML document has no <graph>".into())
        );
        assert!(error("<gexf/>", Format::GraphMl).2.contains("<graphml>"));
    }

    #[test]
    fn dot_chains_attributes_and_comments() {
        let text = r#"/* a lab */ strict graph "my lab" {
  graph [rankdir=LR]; node [shape=circle]
  rankdir = LR
  c [label="C, the third"];  // declared first
  a -- b -- "c" [color=red]
  # a preprocessor-style line
  "d e" -- a; b:p1:n -- d2
  d2
}
"#;
        let got = import(text, Format::Dot).unwrap();
        assert_eq!(
            got,
            imported(
                &["c", "d2", "a", "b", "d e"],
                &[(2, 3), (3, 0), (4, 2), (3, 1)]
            )
        );
        let directed = import("digraph{1->2->-3.5;2->x}", Format::Dot).unwrap();
        assert_eq!(
            directed,
            imported(&["1", "2", "-3.5", "x"], &[(0, 1), (1, 2), (1, 3)])
        );
        let marked = import("\u{feff}graph { a -- b }", Format::Dot).unwrap();
        assert_eq!(marked, imported(&["a", "b"], &[(0, 1)]));
        let html = import("graph { <<b>x</b>> -- y }", Format::Dot).unwrap();
        assert_eq!(html.nodes, ["<b>x</b>", "y"]);
    }

    #[test]
    fn dot_errors_have_locations() {
        let dot = |text: &str| error(text, Format::Dot);
        assert_eq!(
            dot("graph {\n  a -- b\n  subgraph s { c }\n}"),
            (
                3,
                3,
                "subgraphs are not supported; write each edge as `a -- b`".into()
            )
        );
        assert_eq!(dot("graph { a -- { b c } }").0, 1);
        assert_eq!(dot("graph {\n a -- b;\n b -> a }").0, 3);
        assert_eq!(dot("graph { a -- a }").1, 9);
        assert_eq!(
            dot("graph { a -- b").2,
            "the graph is never closed; expected `}`"
        );
        assert_eq!(
            dot("tree { }"),
            (1, 1, "expected `graph` or `digraph`, found `tree`".into())
        );
        assert_eq!(dot("graph {\n \"a -- b\n}").0, 2);
        assert_eq!(dot("graph { /* x }").1, 9);
        assert_eq!(dot("graph { a [x=1 }").1, 11);
        assert_eq!(dot("graph { a } graph { b }").1, 13);
        assert_eq!(
            dot("graph { node -- b }").2,
            "`node` is a DOT keyword; quote it to use it as a node name"
        );
        assert_eq!(dot("graph { a -- b + c }").2, "unexpected character `+`");
    }

    fn round_trip(names: &[String], edges: &[Edge]) {
        for format in Format::ALL {
            let text = export(names, edges, format);
            let back = import(&text, format).unwrap_or_else(|e| panic!("{format:?}: {e}\n{text}"));
            assert_eq!(back.nodes, names, "{format:?}\n{text}");
            let edges: Vec<(usize, usize)> = edges.iter().map(|e| (e.from, e.to)).collect();
            assert_eq!(back.edges, edges, "{format:?}\n{text}");
        }
    }

    #[test]
    fn export_then_import_gives_the_same_topology() {
        use crate::core::topology::generators::Generator;
        let plain: Vec<String> = (0..12).map(|i| format!("n{i}")).collect();
        for g in [
            Generator::Tree { k: 2 },
            Generator::Random {
                degree: 3.0,
                seed: 1,
            },
            Generator::Grid {
                width: 4,
                torus: true,
            },
        ] {
            round_trip(&plain, &g.edges(12).unwrap());
        }
        // Isolated nodes, names DOT and XML must quote, and a node only in the middle of the order.
        let odd = names(&["node", "a-b", "x&<y>\"'", "1.5", "lone", "z"]);
        let e = |a, b| Edge::new(a, b);
        round_trip(&odd, &[e(2, 1), e(0, 3), e(5, 0)]);
        round_trip(&odd, &[]);
        round_trip(&[], &[]);
    }

    #[test]
    fn exports_are_readable() {
        let n = names(&["n0", "n1", "n-2"]);
        let edges = [Edge::new(1, 0), Edge::new(1, 2)];
        assert_eq!(
            export(&n, &edges, Format::EdgeList),
            "# 3 nodes, 2 edges; `a b` means a dials b, a lone name declares a node\nn0\nn1 n0\nn1 n-2\n"
        );
        assert_eq!(
            export(&n, &edges, Format::Dot),
            "graph regbox {\n  n0;\n  n1;\n  \"n-2\";\n  n1 -- n0;\n  n1 -- \"n-2\";\n}\n"
        );
        let xml = export(&n, &edges, Format::GraphMl);
        let doc = roxmltree::Document::parse(&xml).unwrap();
        let graph = doc.descendants().find(|d| d.has_tag_name("graph")).unwrap();
        assert_eq!(graph.attribute("edgedefault"), Some("undirected"));
        assert_eq!(
            doc.descendants().filter(|d| d.has_tag_name("edge")).count(),
            2
        );
    }

    #[test]
    fn declared_prefix_is_as_short_as_the_order_allows() {
        let e = |a, b| Edge::new(a, b);
        assert_eq!(declared_prefix(3, &[e(0, 1), e(1, 2)]), 0);
        assert_eq!(declared_prefix(3, &[e(1, 0), e(2, 0)]), 1);
        assert_eq!(declared_prefix(4, &[e(0, 1), e(1, 2)]), 4);
        assert_eq!(declared_prefix(4, &[e(2, 3), e(0, 1)]), 2);
        assert_eq!(declared_prefix(0, &[]), 0);
    }

    #[test]
    fn import_error_displays_its_location() {
        let e = import("a a", Format::EdgeList).unwrap_err();
        assert_eq!(
            e.to_string(),
            "line 1, column 1: self-loop on `a`: a node cannot peer with itself"
        );
    }
}
