//! The `body_parse` target's input, here so that the seed generator (`examples/seed_corpus.rs`) can
//! check that its seeds decode as it means them to.

use arbitrary::Arbitrary;

#[derive(Arbitrary, Debug, PartialEq, Eq)]
pub enum ContentType {
    Missing,
    Json,
    JsonWithCharset,
    ProblemJson,
    Form,
    Raw(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
pub struct Input {
    pub content_type: ContentType,
    pub body: Vec<u8>,
}
