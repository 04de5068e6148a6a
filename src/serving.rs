//! Which backends serve each model right now: one flag per route of each
//! catalog model (see [`crate::catalog::Model::routes`]). Every route
//! serves until the health probes (see [`crate::health`]) say otherwise; the
//! root context updates the flags, requests read them.
//!
//! Each Envoy worker has its own VM, gateway and probes, so the flags need
//! no lock: a `Cell` per route, read by the requests of the same worker.

use crate::catalog::{Catalog, Model, ModelIndex, ModelRoute};
use std::cell::Cell;

#[derive(Debug, Clone, Default)]
pub struct Serving {
    /// `routes[model][route]`: whether that route serves the model.
    routes: Vec<Vec<Cell<bool>>>,
}

impl Serving {
    /// Every route of every model serving (the state at start-up).
    pub fn new(catalog: &Catalog) -> Self {
        Serving {
            routes: catalog
                .models()
                .map(|(_, model)| model.routes().map(|_| Cell::new(true)).collect())
                .collect(),
        }
    }

    /// Whether route `route` of model `model` serves it (routes the flags do
    /// not know of serve).
    pub fn is_serving(&self, model: ModelIndex, route: usize) -> bool {
        self.routes
            .get(model)
            .and_then(|routes| routes.get(route))
            .is_none_or(Cell::get)
    }

    /// Marks a route serving or not; whether that changed anything.
    pub fn set(&self, model: ModelIndex, route: usize, serving: bool) -> bool {
        match self.routes.get(model).and_then(|routes| routes.get(route)) {
            Some(cell) => cell.replace(serving) != serving,
            None => false,
        }
    }

    /// The first route that serves the model, with its index.
    pub fn first<'a>(
        &self,
        index: ModelIndex,
        model: &'a Model,
    ) -> Option<(usize, &'a ModelRoute)> {
        model
            .routes()
            .enumerate()
            .find(|(route, _)| self.is_serving(index, *route))
    }

    /// How many of the model's routes serve it.
    pub fn count(&self, index: ModelIndex, model: &Model) -> usize {
        (0..model.routes().count())
            .filter(|route| self.is_serving(index, *route))
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Category, ModelRoute};
    use crate::test_support::test_model;

    #[test]
    fn routes_serve_until_told_otherwise_and_the_first_serving_one_is_picked() {
        let mut two = test_model("two", Category::Text, "a");
        two.fallbacks = vec![ModelRoute::new("b")];
        let catalog =
            Catalog::new(vec![two.clone(), test_model("one", Category::Text, "a")]).unwrap();
        let serving = Serving::new(&catalog);
        assert_eq!(serving.first(0, &two).unwrap().1.backend, "a");
        assert_eq!(serving.count(0, &two), 2);

        assert!(serving.set(0, 0, false));
        assert!(!serving.set(0, 0, false), "no change the second time");
        assert_eq!(serving.first(0, &two), Some((1, &ModelRoute::new("b"))));
        assert_eq!(serving.count(0, &two), 1);
        assert!(serving.set(0, 1, false));
        assert_eq!(serving.first(0, &two), None);
        assert_eq!(serving.count(0, &two), 0);
        // The other model is untouched; unknown routes serve.
        assert!(serving.is_serving(1, 0));
        assert!(serving.is_serving(7, 3));
        assert!(!serving.set(7, 3, false));
        assert!(serving.set(0, 0, true));
        assert_eq!(serving.first(0, &two).unwrap().0, 0);
    }
}
