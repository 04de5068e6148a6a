//! Field paths such as `messages[2].content[0].image_url.url`, built on the
//! stack while validating and formatted only when an error names one.

use std::fmt;

#[derive(Clone, Copy)]
enum Segment {
    Field(&'static str),
    Index(usize),
}

#[derive(Clone, Copy)]
pub struct Path<'p> {
    parent: Option<&'p Path<'p>>,
    segment: Segment,
}

impl<'p> Path<'p> {
    pub fn root(name: &'static str) -> Self {
        Path {
            parent: None,
            segment: Segment::Field(name),
        }
    }

    pub fn field(&'p self, name: &'static str) -> Path<'p> {
        Path {
            parent: Some(self),
            segment: Segment::Field(name),
        }
    }

    pub fn index(&'p self, index: usize) -> Path<'p> {
        Path {
            parent: Some(self),
            segment: Segment::Index(index),
        }
    }
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(parent) = self.parent {
            parent.fmt(f)?;
        }
        match (self.segment, self.parent) {
            (Segment::Field(name), None) => f.write_str(name),
            (Segment::Field(name), Some(_)) => write!(f, ".{name}"),
            (Segment::Index(i), _) => write!(f, "[{i}]"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_like_openai_params() {
        let root = Path::root("messages");
        let msg = root.index(2);
        let content = msg.field("content");
        let part = content.index(0);
        let image = part.field("image_url");
        assert_eq!(
            image.field("url").to_string(),
            "messages[2].content[0].image_url.url"
        );
        assert_eq!(Path::root("n").to_string(), "n");
    }
}
