//! The macro behind the registry's list ([`super`]): from one line per connector type it writes
//! the config enums, the built-connector enums and every `match` over them, so that no other
//! place in enid lists connector types.

/// Generates, from the list of connector types, the config enums, the built-connector enums and
/// every `match` over them, so that no other place in enid lists connector types.
macro_rules! connectors {
    (
        sources { $( $(#[$sdoc:meta])* $svariant:ident = $sname:literal => $sconfig:ty, )+ }
        targets { $( $(#[$tdoc:meta])* $tvariant:ident = $tname:literal => $tconfig:ty, )+ }
    ) => {
        /// The connector settings of a source, by `type` (`[sources.<id>]` less its policy).
        #[derive(Debug, Clone, serde::Deserialize)]
        #[serde(tag = "type", deny_unknown_fields)]
        // Built once per run: the size of a variant does not matter.
        #[allow(clippy::large_enum_variant)]
        pub enum SourceConfig {
            $( $(#[$sdoc])* #[serde(rename = $sname)] $svariant($sconfig), )+
        }

        impl SourceConfig {
            /// The connector's own checks, without a network.
            pub fn validate(&self) -> Result<(), String> {
                match self { $( SourceConfig::$svariant(c) => ConnectorConfig::validate(c), )+ }
            }

            /// Takes the connector's relative paths relative to `dir`, the config file's directory.
            pub fn resolve_paths(&mut self, dir: &Path) {
                match self { $( SourceConfig::$svariant(c) => ConnectorConfig::resolve_paths(c, dir), )+ }
            }

            /// Builds the source `[sources.<id>]`: reads its secrets, contacts nothing.
            pub fn build(&self, id: &str) -> Result<AnySource, String> {
                match self { $( SourceConfig::$svariant(c) => SourceConnector::build(c, id).map(AnySource::$svariant), )+ }
            }
        }

        /// A source of any type enid knows.
        #[derive(Debug)]
        #[allow(clippy::large_enum_variant)]
        pub enum AnySource {
            $( $(#[$sdoc])* $svariant(<$sconfig as SourceConnector>::Source), )+
        }

        impl AnySource {
            pub async fn check(&self) -> Result<(), SourceError> {
                match self { $( AnySource::$svariant(s) => s.check().await, )+ }
            }

            pub async fn fetch(&self, cx: FetchContext<'_>) -> Result<Fetched, SourceError> {
                match self { $( AnySource::$svariant(s) => s.fetch(cx).await, )+ }
            }

            pub fn incremental(&self) -> bool {
                match self { $( AnySource::$svariant(s) => s.incremental(), )+ }
            }

            pub fn full_read_every(&self) -> Option<std::time::Duration> {
                match self { $( AnySource::$svariant(s) => s.full_read_every(), )+ }
            }

            pub fn scope(&self) -> String {
                match self { $( AnySource::$svariant(s) => s.scope(), )+ }
            }

            pub fn files(&self) -> Vec<std::path::PathBuf> {
                match self { $( AnySource::$svariant(s) => s.files(), )+ }
            }
        }

        /// The connector settings of a target, by `type` (`[targets.<id>]` less its policy).
        #[derive(Debug, Clone, serde::Deserialize)]
        #[serde(tag = "type", deny_unknown_fields)]
        pub enum TargetConfig {
            $( $(#[$tdoc])* #[serde(rename = $tname)] $tvariant($tconfig), )+
        }

        impl TargetConfig {
            /// What the target declares, from its settings alone (no IO).
            pub fn capabilities(&self) -> Capabilities {
                match self { $( TargetConfig::$tvariant(c) => TargetConnector::capabilities(c), )+ }
            }

            /// Why the policy may not set `attr` on this target, when it may not.
            pub fn fixed_attribute(&self, attr: &str) -> Option<&'static str> {
                match self { $( TargetConfig::$tvariant(c) => TargetConnector::fixed_attribute(c, attr), )+ }
            }

            /// The connector's own checks, without a network.
            pub fn validate(&self) -> Result<(), String> {
                match self { $( TargetConfig::$tvariant(c) => ConnectorConfig::validate(c), )+ }
            }

            /// Takes the connector's relative paths relative to `dir`, the config file's directory.
            pub fn resolve_paths(&mut self, dir: &Path) {
                match self { $( TargetConfig::$tvariant(c) => ConnectorConfig::resolve_paths(c, dir), )+ }
            }

            /// Builds the target `[targets.<id>]`: reads its secrets, contacts nothing.
            pub fn build(&self, id: &str) -> Result<AnyTarget, String> {
                match self { $( TargetConfig::$tvariant(c) => TargetConnector::build(c, id).map(|t| AnyTarget::$tvariant(Box::new(t))), )+ }
            }
        }

        /// A target of any type enid knows. It is a [`Target`] itself, dispatching by `match`.
        #[derive(Debug)]
        pub enum AnyTarget {
            // Boxed: connectors differ much in size, and a target is built once.
            $( $(#[$tdoc])* $tvariant(Box<<$tconfig as TargetConnector>::Target>), )+
        }

        impl Target for AnyTarget {
            fn capabilities(&self) -> &Capabilities {
                match self { $( AnyTarget::$tvariant(t) => t.capabilities(), )+ }
            }

            fn scope(&self) -> String {
                match self { $( AnyTarget::$tvariant(t) => t.scope(), )+ }
            }

            fn group_scope(&self) -> String {
                match self { $( AnyTarget::$tvariant(t) => t.group_scope(), )+ }
            }

            async fn check(&self) -> Result<String, TargetError> {
                match self { $( AnyTarget::$tvariant(t) => t.check().await, )+ }
            }

            async fn observe(&self, attrs: &[String]) -> Result<Vec<ObservedAccount>, TargetError> {
                match self { $( AnyTarget::$tvariant(t) => t.observe(attrs).await, )+ }
            }

            async fn observe_groups(&self) -> Result<Vec<ObservedGroup>, TargetError> {
                match self { $( AnyTarget::$tvariant(t) => t.observe_groups().await, )+ }
            }

            async fn find_outside_scope(
                &self,
                lookup: Lookup,
                values: &[String],
            ) -> Result<Vec<(String, String)>, TargetError> {
                match self { $( AnyTarget::$tvariant(t) => t.find_outside_scope(lookup, values).await, )+ }
            }

            async fn observe_at(&self, key: &str, attrs: &[String]) -> Result<Option<ObservedAccount>, TargetError> {
                match self { $( AnyTarget::$tvariant(t) => t.observe_at(key, attrs).await, )+ }
            }

            async fn observe_where(
                &self,
                field: connector_api::Field<'_>,
                values: &[String],
                attrs: &[String],
            ) -> Result<Option<Vec<ObservedAccount>>, TargetError> {
                match self { $( AnyTarget::$tvariant(t) => t.observe_where(field, values, attrs).await, )+ }
            }

            fn resume(&self, state: Option<String>) {
                match self { $( AnyTarget::$tvariant(t) => t.resume(state), )+ }
            }

            fn saved_state(&self) -> Option<String> {
                match self { $( AnyTarget::$tvariant(t) => t.saved_state(), )+ }
            }

            fn defer_anchors(&self, creates: usize, in_scope: usize) -> bool {
                match self { $( AnyTarget::$tvariant(t) => t.defer_anchors(creates, in_scope), )+ }
            }

            async fn read_anchors(
                &self,
                into: tokio::sync::mpsc::Sender<Vec<connector_api::FoundAnchor>>,
            ) -> Result<(), TargetError> {
                match self { $( AnyTarget::$tvariant(t) => t.read_anchors(into).await, )+ }
            }

            async fn apply(&self, op: &TargetOp) -> Result<OpOutcome, TargetError> {
                match self { $( AnyTarget::$tvariant(t) => t.apply(op).await, )+ }
            }

            async fn apply_batch(&self, ops: &[TargetOp]) -> Vec<Result<OpOutcome, TargetError>> {
                match self { $( AnyTarget::$tvariant(t) => t.apply_batch(ops).await, )+ }
            }
        }
    };
}
