//! The model catalog: what each model is, which backend serves it, and which
//! endpoints it may be used with.

use crate::endpoints::Endpoint;
use crate::model_names::Renames;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::rc::Rc;

/// A model's category, as listed by `GET /v1/models` in the `category` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum Category {
    Text,
    Code,
    Reasoning,
    Multimodal,
    Embeddings,
    Image,
    Audio,
    Video,
}

impl Category {
    pub const ALL: [Category; 8] = [
        Category::Text,
        Category::Code,
        Category::Reasoning,
        Category::Multimodal,
        Category::Embeddings,
        Category::Image,
        Category::Audio,
        Category::Video,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Category::Text => "text",
            Category::Code => "code",
            Category::Reasoning => "reasoning",
            Category::Multimodal => "multimodal",
            Category::Embeddings => "embeddings",
            Category::Image => "image",
            Category::Audio => "audio",
            Category::Video => "video",
        }
    }

    /// The model categories an endpoint accepts (empty for endpoints without a model).
    pub fn for_endpoint(endpoint: Endpoint) -> &'static [Category] {
        use Category::*;
        const LANGUAGE: &[Category] = &[Text, Code, Reasoning, Multimodal];
        match endpoint {
            Endpoint::ChatCompletions | Endpoint::Responses => LANGUAGE,
            Endpoint::Completions => &[Text, Code, Reasoning],
            Endpoint::Embeddings => &[Embeddings],
            Endpoint::ImageGenerations => &[Image],
            Endpoint::VideoGenerations => &[Video],
            Endpoint::Speech | Endpoint::Transcriptions => &[Audio],
            Endpoint::ListModels
            | Endpoint::RetrieveModel
            | Endpoint::ResponseById
            | Endpoint::DeferredCompletion
            | Endpoint::VideoById => &[],
        }
    }

    pub fn serves(self, endpoint: Endpoint) -> bool {
        Self::for_endpoint(endpoint).contains(&self)
    }
}

/// Capability labels that gate request features.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum Capability {
    /// `tools` / `tool_choice` are accepted.
    ToolUse,
    /// Image content parts are accepted.
    Vision,
    /// `response_format: {type: json_schema}` is passed through (otherwise it
    /// falls back to json_object).
    JsonSchema,
}

/// A backend that serves a model, and the name it knows the model by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelRoute {
    /// Value written into the backend routing header; Envoy routes match it.
    pub backend: String,
    /// The name the backend knows the model by, when it differs from the
    /// model's `id`.
    pub upstream_model: Option<String>,
}

impl ModelRoute {
    pub fn new(backend: &str) -> Self {
        ModelRoute {
            backend: backend.to_string(),
            upstream_model: None,
        }
    }
}

/// One model of the catalog, compiled from configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    /// The id clients use and `GET /v1/models` lists.
    pub id: String,
    pub category: Category,
    /// The backend that serves the model first.
    pub route: ModelRoute,
    /// Backends that serve it when the ones before are not serving, in order.
    pub fallbacks: Vec<ModelRoute>,
    pub aliases: Vec<String>,
    pub capabilities: Vec<Capability>,
    pub owned_by: String,
    pub created: u64,
    /// Tokens of prompt and output together, when the operator declared it.
    pub context_window: Option<u64>,
    /// Output tokens per request at most, when declared.
    pub max_output_tokens: Option<u64>,
    /// What its tokens cost, when priced (spend budgets).
    pub price: Option<crate::billing::Price>,
}

impl Model {
    pub fn has(&self, capability: Capability) -> bool {
        self.capabilities.contains(&capability)
    }

    /// The backends that serve the model, in priority order (at least one).
    pub fn routes(&self) -> impl Iterator<Item = &ModelRoute> {
        std::iter::once(&self.route).chain(&self.fallbacks)
    }

    /// Route `index` of [`Model::routes`].
    pub fn route_at(&self, index: usize) -> Option<&ModelRoute> {
        match index.checked_sub(1) {
            None => Some(&self.route),
            Some(fallback) => self.fallbacks.get(fallback),
        }
    }

    /// The name to send to the route's backend.
    pub fn upstream_name<'a>(&'a self, route: &'a ModelRoute) -> &'a str {
        route.upstream_model.as_deref().unwrap_or(&self.id)
    }
}

/// Index into the catalog's model list.
pub type ModelIndex = usize;

#[derive(Debug, Clone, Default)]
pub struct Catalog {
    models: Vec<Model>,
    by_name: HashMap<String, ModelIndex>,
    /// The renames each model's responses need, by model then route (the
    /// backend's name for the model back to its id), made once here rather
    /// than per request.
    route_renames: Vec<Vec<Rc<Renames>>>,
    /// The renames of every model a backend serves (for objects fetched by
    /// id, whose model is not known before the response).
    backend_renames: HashMap<String, Rc<Renames>>,
}

impl Catalog {
    /// Builds the catalog; ids and aliases must be unique across all models.
    pub fn new(models: Vec<Model>) -> Result<Self, String> {
        let mut by_name = HashMap::new();
        for (index, model) in models.iter().enumerate() {
            for name in std::iter::once(&model.id).chain(&model.aliases) {
                if by_name.insert(name.clone(), index).is_some() {
                    return Err(format!(
                        "model name `{name}` is used twice (ids and aliases must be unique)"
                    ));
                }
            }
        }
        let route_renames = models
            .iter()
            .map(|model| {
                model
                    .routes()
                    .map(|route| {
                        Rc::new(Renames::new([(
                            model.upstream_name(route),
                            model.id.as_str(),
                        )]))
                    })
                    .collect()
            })
            .collect();
        let mut backends: Vec<&str> = models
            .iter()
            .flat_map(|model| model.routes().map(|route| route.backend.as_str()))
            .collect();
        backends.sort_unstable();
        backends.dedup();
        let backend_renames = backends
            .into_iter()
            .map(|backend| {
                let pairs = models.iter().flat_map(|model| {
                    model
                        .routes()
                        .filter(move |route| route.backend == backend)
                        .map(move |route| (model.upstream_name(route), model.id.as_str()))
                });
                (backend.to_string(), Rc::new(Renames::new(pairs)))
            })
            .collect();
        Ok(Catalog {
            models,
            by_name,
            route_renames,
            backend_renames,
        })
    }

    /// What responses of route `route` of model `index` need renamed.
    pub fn route_renames(&self, index: ModelIndex, route: usize) -> Rc<Renames> {
        self.route_renames
            .get(index)
            .and_then(|routes| routes.get(route))
            .cloned()
            .unwrap_or_default()
    }

    /// What responses of `backend` need renamed, whatever their model.
    pub fn backend_renames(&self, backend: &str) -> Rc<Renames> {
        self.backend_renames
            .get(backend)
            .cloned()
            .unwrap_or_default()
    }

    /// The model a client-supplied name (id or alias) refers to.
    pub fn resolve(&self, name: &str) -> Option<(ModelIndex, &Model)> {
        let index = *self.by_name.get(name)?;
        Some((index, self.models.get(index)?))
    }

    pub fn models(&self) -> impl Iterator<Item = (ModelIndex, &Model)> {
        self.models.iter().enumerate()
    }

    pub fn len(&self) -> usize {
        self.models.len()
    }

    pub fn is_empty(&self) -> bool {
        self.models.is_empty()
    }
}

/// OpenAI's `Model` object plus the `category` extension.
#[derive(Serialize)]
pub struct ModelObject<'a> {
    pub id: &'a str,
    pub object: &'static str,
    pub created: u64,
    pub owned_by: &'a str,
    pub category: &'static str,
}

impl<'a> From<&'a Model> for ModelObject<'a> {
    fn from(m: &'a Model) -> Self {
        ModelObject {
            id: &m.id,
            object: "model",
            created: m.created,
            owned_by: &m.owned_by,
            category: m.category.as_str(),
        }
    }
}

/// OpenAI's list shape: `{"object": "list", "data": [...]}`.
pub fn list_body<'a>(models: impl Iterator<Item = &'a Model>) -> Vec<u8> {
    #[derive(Serialize)]
    struct List<'a> {
        object: &'static str,
        data: Vec<ModelObject<'a>>,
    }
    let list = List {
        object: "list",
        data: models.map(ModelObject::from).collect(),
    };
    serde_json::to_vec(&list).unwrap_or_default()
}

pub fn model_body(model: &Model) -> Vec<u8> {
    serde_json::to_vec(&ModelObject::from(model)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::test_model;

    #[test]
    fn resolves_ids_and_aliases() {
        let mut m = test_model("llama", Category::Text, "a");
        m.aliases = vec!["gpt-4o-mini".into()];
        let catalog = Catalog::new(vec![m, test_model("bge", Category::Embeddings, "b")]).unwrap();
        assert_eq!(catalog.resolve("llama").unwrap().0, 0);
        assert_eq!(catalog.resolve("gpt-4o-mini").unwrap().1.id, "llama");
        assert_eq!(catalog.resolve("bge").unwrap().1.route.backend, "b");
        assert!(catalog.resolve("LLAMA").is_none());
    }

    #[test]
    fn duplicate_names_are_refused() {
        let mut m = test_model("a", Category::Text, "x");
        m.aliases = vec!["b".into()];
        let err = Catalog::new(vec![m, test_model("b", Category::Text, "x")]).unwrap_err();
        assert!(err.contains("`b`"), "{err}");
    }

    #[test]
    fn categories_serve_their_endpoints() {
        assert!(Category::Text.serves(Endpoint::ChatCompletions));
        assert!(Category::Multimodal.serves(Endpoint::ChatCompletions));
        assert!(!Category::Embeddings.serves(Endpoint::ChatCompletions));
        assert!(Category::Embeddings.serves(Endpoint::Embeddings));
        assert!(Category::Audio.serves(Endpoint::Transcriptions));
        assert!(Category::Audio.serves(Endpoint::Speech));
        assert!(!Category::Image.serves(Endpoint::Speech));
        assert!(Category::Video.serves(Endpoint::VideoGenerations));
        // Every category serves at least one endpoint.
        for c in Category::ALL {
            assert!(
                crate::endpoints::Endpoint::ALL.iter().any(|e| c.serves(*e)),
                "{c:?}"
            );
        }
    }

    #[test]
    fn list_shape() {
        let v: serde_json::Value =
            serde_json::from_slice(&list_body([test_model("m", Category::Code, "a")].iter()))
                .unwrap();
        assert_eq!(v["object"], "list");
        assert_eq!(v["data"][0]["id"], "m");
        assert_eq!(v["data"][0]["object"], "model");
        assert_eq!(v["data"][0]["category"], "code");
        assert_eq!(v["data"][0]["owned_by"], "system");
    }
}
