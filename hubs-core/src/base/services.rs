//! Services injected into hub methods, by type and by type and key.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::Arc;

/// Values registered on the server that hub methods take as parameters, as ASP.NET Core
/// does with `[FromServices]` and `[FromKeyedServices]`.
///
/// # Examples
///
/// ```
/// use hubs_core::Services;
///
/// struct Db(&'static str);
/// let mut services = Services::new();
/// services.insert(Db("primary"));
/// services.insert_keyed("replica", Db("replica"));
/// assert_eq!(services.get::<Db>(None).unwrap().0, "primary");
/// assert_eq!(services.get::<Db>(Some("replica")).unwrap().0, "replica");
/// assert!(services.get::<String>(None).is_none());
/// ```
#[derive(Clone, Default)]
pub struct Services {
    map: HashMap<(TypeId, Option<String>), Arc<dyn Any + Send + Sync>>,
}

impl Services {
    /// No services.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `value` as the service of its type, replacing any earlier one.
    pub fn insert<T: Send + Sync + 'static>(&mut self, value: T) {
        self.insert_arc(None, Arc::new(value));
    }

    /// Registers `value` under `key`.
    pub fn insert_keyed<T: Send + Sync + 'static>(&mut self, key: impl Into<String>, value: T) {
        self.insert_arc(Some(key.into()), Arc::new(value));
    }

    /// Registers a shared value, under `key` if given.
    pub fn insert_arc<T: Send + Sync + 'static>(&mut self, key: Option<String>, value: Arc<T>) {
        self.map.insert((TypeId::of::<T>(), key), value);
    }

    /// The service of type `T` (under `key`, if given).
    pub fn get<T: Send + Sync + 'static>(&self, key: Option<&str>) -> Option<Arc<T>> {
        self.map
            .get(&(TypeId::of::<T>(), key.map(str::to_owned)))
            .and_then(|value| value.clone().downcast::<T>().ok())
    }

    /// Whether a service of this type id and key is registered.
    pub fn contains(&self, type_id: TypeId, key: Option<&str>) -> bool {
        self.map.contains_key(&(type_id, key.map(str::to_owned)))
    }
}

impl std::fmt::Debug for Services {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Services")
            .field("count", &self.map.len())
            .finish()
    }
}

/// A service a hub method injects: by type, and optionally by key.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ServiceKey {
    /// The service's type.
    pub type_id: TypeId,
    /// Its name, for error messages.
    pub type_name: &'static str,
    /// The key, for keyed services.
    pub key: Option<&'static str>,
}

impl ServiceKey {
    /// The key of a service of type `T`, with an optional key.
    pub fn of<T: 'static>(key: Option<&'static str>) -> Self {
        Self {
            type_id: TypeId::of::<T>(),
            type_name: std::any::type_name::<T>(),
            key,
        }
    }
}

impl std::fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.key {
            Some(key) => write!(f, "{} (key \"{key}\")", self.type_name),
            None => f.write_str(self.type_name),
        }
    }
}
