//! The CEL subset upstream writes sharing-rule conditions in: comparisons of
//! `record.<field>` with literals (strings, numbers, `true`, `false`, `null`),
//! joined by `&&` and `||`, with `!` and parentheses.
//!
//! The literal `true` standing alone as a predicate matches every record, as
//! upstream's compiler lowers it (to `{}`); so `record.a == 1 && true` is
//! `record.a == 1`. A condition that matches every record as a whole (`true`,
//! `record.a == 1 || true`) is refused by validation, because upstream never
//! seeds such a rule. `false` alone is refused, as upstream's compiler refuses
//! every constant predicate but `true`.
//!
//! Anything outside the subset is an error, so an unreadable condition can never
//! silently share more (or less) than its author meant.

/// The methods and operators a condition may use (what `validate_expression`
/// reports as in scope).
pub const FUNCTIONS: &[&str] = &[
    "startsWith",
    "endsWith",
    "contains",
    "in",
    "==",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "&&",
    "||",
    "!",
];

use serde_json::{Number, Value};

use crate::model::filter::{Filter, Op};

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    Str(String),
    Num(f64, String),
    True,
    False,
    Null,
    Dot,
    Comma,
    LParen,
    RParen,
    LBracket,
    RBracket,
    Not,
    And,
    Or,
    Cmp(&'static str),
    In,
}

fn tokenize(src: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = src.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                out.push(Token::LParen);
                i += 1;
            }
            ')' => {
                out.push(Token::RParen);
                i += 1;
            }
            '[' => {
                out.push(Token::LBracket);
                i += 1;
            }
            ']' => {
                out.push(Token::RBracket);
                i += 1;
            }
            ',' => {
                out.push(Token::Comma);
                i += 1;
            }
            '.' if !chars.get(i + 1).is_some_and(|d| d.is_ascii_digit()) => {
                out.push(Token::Dot);
                i += 1;
            }
            '&' if chars.get(i + 1) == Some(&'&') => {
                out.push(Token::And);
                i += 2;
            }
            '|' if chars.get(i + 1) == Some(&'|') => {
                out.push(Token::Or);
                i += 2;
            }
            '=' if chars.get(i + 1) == Some(&'=') => {
                out.push(Token::Cmp("=="));
                i += 2;
            }
            '!' if chars.get(i + 1) == Some(&'=') => {
                out.push(Token::Cmp("!="));
                i += 2;
            }
            '!' => {
                out.push(Token::Not);
                i += 1;
            }
            '>' if chars.get(i + 1) == Some(&'=') => {
                out.push(Token::Cmp(">="));
                i += 2;
            }
            '<' if chars.get(i + 1) == Some(&'=') => {
                out.push(Token::Cmp("<="));
                i += 2;
            }
            '>' => {
                out.push(Token::Cmp(">"));
                i += 1;
            }
            '<' => {
                out.push(Token::Cmp("<"));
                i += 1;
            }
            '\'' | '"' => {
                let quote = c;
                let mut text = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err("a string literal is not closed".into()),
                        Some('\\') => {
                            let escaped =
                                chars.get(i + 1).ok_or("a string literal ends in `\\`")?;
                            text.push(match escaped {
                                'n' => '\n',
                                't' => '\t',
                                'r' => '\r',
                                other => *other,
                            });
                            i += 2;
                        }
                        Some(ch) if *ch == quote => {
                            i += 1;
                            break;
                        }
                        Some(ch) => {
                            text.push(*ch);
                            i += 1;
                        }
                    }
                }
                out.push(Token::Str(text));
            }
            c if c.is_ascii_digit() || c == '-' || c == '.' => {
                let start = i;
                i += 1;
                let continues = |at: usize| {
                    let c = chars[at];
                    c.is_ascii_digit()
                        || matches!(c, '.' | 'e' | 'E')
                        || (matches!(c, '+' | '-') && matches!(chars[at - 1], 'e' | 'E'))
                };
                while i < chars.len() && continues(i) {
                    i += 1;
                }
                let text: String = chars[start..i].iter().collect();
                let value: f64 = text
                    .parse()
                    .map_err(|_| format!("`{text}` is not a number"))?;
                out.push(Token::Num(value, text));
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let start = i;
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                out.push(match word.as_str() {
                    "true" => Token::True,
                    "false" => Token::False,
                    "null" => Token::Null,
                    "in" => Token::In,
                    _ => Token::Ident(word),
                });
            }
            other => return Err(format!("`{other}` is not part of the supported CEL subset")),
        }
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
    depth: usize,
}

/// Parse a CEL condition into a filter.
pub fn parse(source: &str) -> Result<Filter, String> {
    if source.len() > 8 * 1024 {
        return Err("the condition is longer than 8 KiB".into());
    }
    let tokens = tokenize(source)?;
    if tokens.is_empty() {
        return Err("the condition is empty".into());
    }
    let mut parser = Parser {
        tokens,
        at: 0,
        depth: 0,
    };
    let filter = parser.or()?;
    if parser.at != parser.tokens.len() {
        return Err(format!(
            "unexpected {} after a complete condition",
            describe(parser.tokens.get(parser.at))
        ));
    }
    Ok(filter)
}

fn describe(token: Option<&Token>) -> String {
    match token {
        None => "end of condition".into(),
        Some(Token::Ident(s)) => format!("`{s}`"),
        Some(Token::Str(s)) => format!("'{s}'"),
        Some(Token::Num(_, s)) => format!("`{s}`"),
        Some(t) => format!("`{t:?}`"),
    }
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.at).cloned();
        self.at += 1;
        t
    }

    fn expect(&mut self, want: Token, what: &str) -> Result<(), String> {
        match self.next() {
            Some(t) if t == want => Ok(()),
            other => Err(format!(
                "expected {what}, found {}",
                describe(other.as_ref())
            )),
        }
    }

    fn or(&mut self) -> Result<Filter, String> {
        let mut items = vec![self.and()?];
        while self.peek() == Some(&Token::Or) {
            self.at += 1;
            items.push(self.and()?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Filter::Or(items)
        })
    }

    fn and(&mut self) -> Result<Filter, String> {
        let mut items = vec![self.unary()?];
        while self.peek() == Some(&Token::And) {
            self.at += 1;
            items.push(self.unary()?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Filter::And(items)
        })
    }

    fn unary(&mut self) -> Result<Filter, String> {
        self.depth += 1;
        if self.depth > crate::limits::MAX_FILTER_DEPTH {
            return Err("the condition is nested too deeply".into());
        }
        let result = match self.peek() {
            Some(Token::Not) => {
                self.at += 1;
                Ok(Filter::Not(Box::new(self.unary()?)))
            }
            Some(Token::LParen) => {
                self.at += 1;
                let inner = self.or()?;
                self.expect(Token::RParen, "`)`")?;
                Ok(inner)
            }
            _ => self.comparison(),
        };
        self.depth -= 1;
        result
    }

    /// `record.field` → Some(field); a literal → None (with the value).
    fn operand(&mut self) -> Result<Operand, String> {
        match self.next() {
            Some(Token::Ident(word)) if word == "record" => {
                self.expect(Token::Dot, "`.` after `record`")?;
                match self.next() {
                    Some(Token::Ident(field)) => Ok(Operand::Field(field)),
                    other => Err(format!(
                        "expected a field name after `record.`, found {}",
                        describe(other.as_ref())
                    )),
                }
            }
            Some(Token::Ident(word)) => Err(format!(
                "`{word}` is not supported in conditions; name fields as `record.<field>` and compare them with literals"
            )),
            Some(Token::Str(s)) => Ok(Operand::Value(Value::String(s))),
            Some(Token::Num(n, text)) => Ok(Operand::Value(number(n, &text)?)),
            Some(Token::True) => Ok(Operand::Value(Value::Bool(true))),
            Some(Token::False) => Ok(Operand::Value(Value::Bool(false))),
            Some(Token::Null) => Ok(Operand::Value(Value::Null)),
            other => Err(format!(
                "expected `record.<field>` or a literal, found {}",
                describe(other.as_ref())
            )),
        }
    }

    fn comparison(&mut self) -> Result<Filter, String> {
        let left = self.operand()?;
        // A boolean literal standing alone as a predicate.
        if let Operand::Value(Value::Bool(b)) = &left
            && !matches!(self.peek(), Some(Token::Cmp(_)))
        {
            return if *b {
                Ok(Filter::All)
            } else {
                Err("`false` alone is not a condition (upstream refuses every constant predicate but `true`); to switch a rule off, give it `active: false`".into())
            };
        }
        // record.field.startsWith('x') and friends
        if let Operand::Field(field) = &left {
            if self.peek() == Some(&Token::Dot) {
                self.at += 1;
                let method = match self.next() {
                    Some(Token::Ident(m)) => m,
                    other => {
                        return Err(format!(
                            "expected a method after `.`, found {}",
                            describe(other.as_ref())
                        ));
                    }
                };
                self.expect(Token::LParen, "`(`")?;
                let arg = match self.next() {
                    Some(Token::Str(s)) => s,
                    other => {
                        return Err(format!(
                            "`{method}` takes a string literal, found {}",
                            describe(other.as_ref())
                        ));
                    }
                };
                self.expect(Token::RParen, "`)`")?;
                let op = match method.as_str() {
                    "startsWith" => Op::StartsWith(arg),
                    "endsWith" => Op::EndsWith(arg),
                    "contains" => Op::Contains(arg),
                    other => {
                        return Err(format!(
                            "the method `{other}` is not supported; use startsWith, endsWith or contains"
                        ));
                    }
                };
                return Ok(Filter::Cmp {
                    field: field.clone(),
                    op,
                });
            }
            if self.peek() == Some(&Token::In) {
                self.at += 1;
                self.expect(Token::LBracket, "`[` after `in`")?;
                let mut values = Vec::new();
                if self.peek() != Some(&Token::RBracket) {
                    loop {
                        match self.operand()? {
                            Operand::Value(v) => values.push(v),
                            Operand::Field(f) => {
                                return Err(format!("`in` takes literals, not `record.{f}`"));
                            }
                        }
                        match self.next() {
                            Some(Token::Comma) => continue,
                            Some(Token::RBracket) => break,
                            other => {
                                return Err(format!(
                                    "expected `,` or `]`, found {}",
                                    describe(other.as_ref())
                                ));
                            }
                        }
                    }
                } else {
                    self.at += 1;
                }
                return Ok(Filter::Cmp {
                    field: field.clone(),
                    op: Op::In(values),
                });
            }
        }
        let op = match self.next() {
            Some(Token::Cmp(op)) => op,
            other => {
                return Err(format!(
                    "expected a comparison (== != > >= < <=), found {}",
                    describe(other.as_ref())
                ));
            }
        };
        let right = self.operand()?;
        let (field, value, op) = match (left, right) {
            (Operand::Field(f), Operand::Value(v)) => (f, v, op),
            (Operand::Value(v), Operand::Field(f)) => (f, v, flip(op)),
            (Operand::Field(_), Operand::Field(_)) => {
                return Err(
                    "comparing two fields is not supported; compare a field with a literal".into(),
                );
            }
            (Operand::Value(_), Operand::Value(_)) => {
                return Err("a comparison must name a field as `record.<field>`".into());
            }
        };
        let op = match (op, value) {
            ("==", Value::Null) => Op::Null(true),
            ("!=", Value::Null) => Op::Null(false),
            ("==", v) => Op::Eq(v),
            ("!=", v) => Op::Ne(v),
            (">", v) => Op::Gt(v),
            (">=", v) => Op::Gte(v),
            ("<", v) => Op::Lt(v),
            ("<=", v) => Op::Lte(v),
            (other, _) => return Err(format!("`{other}` is not a comparison")),
        };
        Ok(Filter::Cmp { field, op })
    }
}

enum Operand {
    Field(String),
    Value(Value),
}

fn flip(op: &'static str) -> &'static str {
    match op {
        ">" => "<",
        ">=" => "<=",
        "<" => ">",
        "<=" => ">=",
        same => same,
    }
}

fn number(n: f64, text: &str) -> Result<Value, String> {
    if let Ok(i) = text.parse::<i64>() {
        return Ok(Value::Number(i.into()));
    }
    Number::from_f64(n)
        .map(Value::Number)
        .ok_or_else(|| format!("`{text}` is not a finite number"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cmp(field: &str, op: Op) -> Filter {
        Filter::Cmp {
            field: field.into(),
            op,
        }
    }

    #[test]
    fn upstream_style_conditions_parse() {
        assert_eq!(
            parse("record.amount >= 100000 && record.region == 'emea'").unwrap(),
            Filter::And(vec![
                cmp("amount", Op::Gte(json!(100000))),
                cmp("region", Op::Eq(json!("emea")))
            ])
        );
        assert_eq!(
            parse("record.stage == \"won\" || (record.stage == 'lost' && !(record.amount < 5.5))")
                .unwrap(),
            Filter::Or(vec![
                cmp("stage", Op::Eq(json!("won"))),
                Filter::And(vec![
                    cmp("stage", Op::Eq(json!("lost"))),
                    Filter::Not(Box::new(cmp("amount", Op::Lt(json!(5.5)))))
                ]),
            ])
        );
        assert_eq!(parse("10 < record.x").unwrap(), cmp("x", Op::Gt(json!(10))));
        assert_eq!(
            parse("record.owner == null").unwrap(),
            cmp("owner", Op::Null(true))
        );
        assert_eq!(
            parse("record.tier in ['a', 'b']").unwrap(),
            cmp("tier", Op::In(vec![json!("a"), json!("b")]))
        );
        assert_eq!(
            parse("record.name.startsWith('Acme')").unwrap(),
            cmp("name", Op::StartsWith("Acme".into()))
        );
        assert_eq!(
            parse("record.delta > -3").unwrap(),
            cmp("delta", Op::Gt(json!(-3)))
        );
    }

    #[test]
    fn boolean_literals_compare_and_stand_alone() {
        assert_eq!(
            parse("record.active == true").unwrap(),
            cmp("active", Op::Eq(json!(true)))
        );
        assert_eq!(
            parse("record.archived != false").unwrap(),
            cmp("archived", Op::Ne(json!(false)))
        );
        assert_eq!(
            parse("false == record.archived").unwrap(),
            cmp("archived", Op::Eq(json!(false)))
        );
        assert_eq!(
            parse("record.flag in [true, false]").unwrap(),
            cmp("flag", Op::In(vec![json!(true), json!(false)]))
        );
        assert_eq!(parse("true").unwrap(), Filter::All);
        assert_eq!(
            parse("record.archived == false && true").unwrap(),
            Filter::And(vec![cmp("archived", Op::Eq(json!(false))), Filter::All])
        );
        assert_eq!(parse("(true)").unwrap(), Filter::All);
        for bad in [
            "false",
            "record.a == 1 && false",
            "true true",
            "true record.a",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn anything_outside_the_subset_is_refused() {
        for bad in [
            "",
            "record.amount",
            "user.id == record.owner",
            "record.a == record.b",
            "record.amount >= 1 &&",
            "record.amount = 5",
            "size(record.tags) > 2",
            "record.a == 'x",
            "1 == 1",
            "record.a.matches('x.*')",
            "record.a == 1 ; drop",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should be refused");
        }
    }
}
