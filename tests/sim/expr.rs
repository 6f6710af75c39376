//! A parser for exactly the expression shapes the lock core sends, nothing more:
//!
//! ```text
//! condition := term ( AND term )*
//! term      := attribute_exists ( #n ) | attribute_not_exists ( #n )
//!            | operand = operand | operand IN ( operand (, operand)* )
//! operand   := #name | :value
//! update    := SET #n = value ( , #n = value )*
//! value     := term ( + term )?
//! term      := :value | #name | if_not_exists ( #n , :value )
//! ```
//!
//! Anything else (OR, NOT, grouping, other functions or comparators, arithmetic, REMOVE/ADD,
//! document paths, literal attribute names) is rejected with an error naming it, so a change
//! in the core's expressions fails the simulation loudly instead of being half-understood.
//! (`term + term` and `if_not_exists` exist for the fencing token:
//! `#fence = if_not_exists(#fence, :base) + :one`.)

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Operand {
    /// `#name` placeholder.
    Name(String),
    /// `:value` placeholder.
    Value(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Term {
    Exists(String),
    NotExists(String),
    Eq(Operand, Operand),
    In(Operand, Vec<Operand>),
}

/// One operand of a `SET` value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SetTerm {
    /// `:value`
    Value(String),
    /// `#name`: the item's current value (DynamoDB refuses it when absent).
    Attr(String),
    /// `if_not_exists(#name, :value)`
    IfNotExists(String, String),
}

/// One `SET` assignment: `#name = term [+ term]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assign {
    pub name: String,
    pub value: SetTerm,
    pub plus: Option<SetTerm>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Tok {
    Ident(String),
    Name(String),
    Value(String),
    Open,
    Close,
    Comma,
    Equals,
    Plus,
}

fn tokenize(s: &str) -> Result<Vec<Tok>, String> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut out = Vec::new();
    let word = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && (b[*i].is_ascii_alphanumeric() || b[*i] == b'_') {
            *i += 1;
        }
        s[start..*i].to_owned()
    };
    while i < b.len() {
        match b[i] {
            b' ' | b'\t' | b'\n' => i += 1,
            b'(' => {
                out.push(Tok::Open);
                i += 1
            }
            b')' => {
                out.push(Tok::Close);
                i += 1
            }
            b',' => {
                out.push(Tok::Comma);
                i += 1
            }
            b'=' => {
                out.push(Tok::Equals);
                i += 1
            }
            b'+' => {
                out.push(Tok::Plus);
                i += 1
            }
            b'#' | b':' => {
                let sigil = b[i];
                i += 1;
                let w = word(&mut i);
                if w.is_empty() {
                    return Err(format!("empty placeholder at byte {i} of {s:?}"));
                }
                let full = format!("{}{w}", sigil as char);
                out.push(if sigil == b'#' {
                    Tok::Name(full)
                } else {
                    Tok::Value(full)
                });
            }
            c if c.is_ascii_alphabetic() || c == b'_' => out.push(Tok::Ident(word(&mut i))),
            c => {
                return Err(format!(
                    "unsupported character {:?} at byte {i} of {s:?}",
                    c as char
                ));
            }
        }
    }
    Ok(out)
}

struct P {
    toks: Vec<Tok>,
    pos: usize,
    src: String,
}

impl P {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }
    fn next(&mut self) -> Result<Tok, String> {
        let t = self
            .toks
            .get(self.pos)
            .cloned()
            .ok_or_else(|| format!("unexpected end of {:?}", self.src))?;
        self.pos += 1;
        Ok(t)
    }
    fn expect(&mut self, want: Tok) -> Result<(), String> {
        let got = self.next()?;
        if got == want {
            Ok(())
        } else {
            Err(format!(
                "expected {want:?}, found {got:?} in {:?}",
                self.src
            ))
        }
    }
    fn keyword(&self, k: &str) -> bool {
        matches!(self.peek(), Some(Tok::Ident(w)) if w.eq_ignore_ascii_case(k))
    }
    fn operand(&mut self) -> Result<Operand, String> {
        match self.next()? {
            Tok::Name(n) => Ok(Operand::Name(n)),
            Tok::Value(v) => Ok(Operand::Value(v)),
            other => Err(format!(
                "unsupported operand {other:?} in {:?} (only #name and :value placeholders)",
                self.src
            )),
        }
    }
    fn name(&mut self) -> Result<String, String> {
        match self.next()? {
            Tok::Name(n) => Ok(n),
            other => Err(format!("expected #name, found {other:?} in {:?}", self.src)),
        }
    }
    fn done(&self) -> bool {
        self.pos == self.toks.len()
    }
    fn set_term(&mut self) -> Result<SetTerm, String> {
        match self.next()? {
            Tok::Value(v) => Ok(SetTerm::Value(v)),
            Tok::Name(n) => Ok(SetTerm::Attr(n)),
            Tok::Ident(f) if f == "if_not_exists" => {
                self.expect(Tok::Open)?;
                let n = self.name()?;
                self.expect(Tok::Comma)?;
                let v = match self.next()? {
                    Tok::Value(v) => v,
                    other => {
                        return Err(format!(
                            "if_not_exists default must be a :value, found {other:?} in {:?}",
                            self.src
                        ));
                    }
                };
                self.expect(Tok::Close)?;
                Ok(SetTerm::IfNotExists(n, v))
            }
            other => Err(format!(
                "unsupported SET value {other:?} in {:?} (only :value, #name, if_not_exists, +)",
                self.src
            )),
        }
    }
}

pub fn parse_condition(s: &str) -> Result<Vec<Term>, String> {
    let mut p = P {
        toks: tokenize(s)?,
        pos: 0,
        src: s.to_owned(),
    };
    let mut terms = Vec::new();
    loop {
        let term = match p.peek() {
            Some(Tok::Ident(f)) if f == "attribute_exists" || f == "attribute_not_exists" => {
                let exists = f == "attribute_exists";
                p.next()?;
                p.expect(Tok::Open)?;
                let n = p.name()?;
                p.expect(Tok::Close)?;
                if exists {
                    Term::Exists(n)
                } else {
                    Term::NotExists(n)
                }
            }
            Some(Tok::Name(_) | Tok::Value(_)) => {
                let left = p.operand()?;
                if p.keyword("IN") {
                    p.next()?;
                    p.expect(Tok::Open)?;
                    let mut list = vec![p.operand()?];
                    while p.peek() == Some(&Tok::Comma) {
                        p.next()?;
                        list.push(p.operand()?);
                    }
                    p.expect(Tok::Close)?;
                    if list.len() > 100 {
                        return Err(format!("IN with {} operands (limit 100)", list.len()));
                    }
                    Term::In(left, list)
                } else {
                    match p.next()? {
                        Tok::Equals => Term::Eq(left, p.operand()?),
                        other => {
                            return Err(format!(
                                "unsupported comparison {other:?} in {s:?} (only = and IN)"
                            ));
                        }
                    }
                }
            }
            other => return Err(format!("unsupported condition term at {other:?} in {s:?}")),
        };
        terms.push(term);
        if p.done() {
            return Ok(terms);
        }
        if p.keyword("AND") {
            p.next()?;
        } else {
            return Err(format!(
                "unsupported connective {:?} in {s:?} (only AND)",
                p.peek()
            ));
        }
    }
}

pub fn parse_update(s: &str) -> Result<Vec<Assign>, String> {
    let mut p = P {
        toks: tokenize(s)?,
        pos: 0,
        src: s.to_owned(),
    };
    if !p.keyword("SET") {
        return Err(format!("unsupported update expression {s:?} (only SET)"));
    }
    p.next()?;
    let mut out = Vec::new();
    loop {
        let name = p.name()?;
        p.expect(Tok::Equals)?;
        let value = p.set_term()?;
        let plus = if p.peek() == Some(&Tok::Plus) {
            p.next()?;
            Some(p.set_term()?)
        } else {
            None
        };
        out.push(Assign { name, value, plus });
        if p.done() {
            return Ok(out);
        }
        match p.next()? {
            Tok::Comma => {}
            other => {
                return Err(format!(
                    "unsupported update clause at {other:?} in {s:?} (only one SET list)"
                ));
            }
        }
    }
}

/// Placeholders mentioned by parsed expressions: `(#names, :values)`.
pub fn placeholders(terms: &[Term], sets: &[Assign]) -> (Vec<String>, Vec<String>) {
    let mut names = Vec::new();
    let mut values = Vec::new();
    let mut op = |o: &Operand| match o {
        Operand::Name(n) => names.push(n.clone()),
        Operand::Value(v) => values.push(v.clone()),
    };
    for t in terms {
        match t {
            Term::Exists(n) | Term::NotExists(n) => op(&Operand::Name(n.clone())),
            Term::Eq(a, b) => {
                op(a);
                op(b)
            }
            Term::In(a, list) => {
                op(a);
                list.iter().for_each(&mut op);
            }
        }
    }
    for a in sets {
        names.push(a.name.clone());
        for t in std::iter::once(&a.value).chain(a.plus.as_ref()) {
            match t {
                SetTerm::Value(v) => values.push(v.clone()),
                SetTerm::Attr(n) => names.push(n.clone()),
                SetTerm::IfNotExists(n, v) => {
                    names.push(n.clone());
                    values.push(v.clone());
                }
            }
        }
    }
    (names, values)
}
