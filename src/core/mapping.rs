//! Attribute mapping: templates that turn a [`Person`] into target attributes.
//!
//! Each target attribute has a template. A template that is just one variable (`{{ given_name }}`)
//! is read directly, which keeps a 100,000-person plan fast; a list variable (`{{ roles }}`)
//! gives one value per element. Any other template is rendered by minijinja, and its output is
//! split on newlines into values. Empty values are dropped, so an attribute whose template
//! renders nothing is absent.
//!
//! Variables: `id`, `username`, `given_name`, `family_name`, `display_name`, `role` (the first),
//! `roles`, `school_unit` (the first), `school_units`, `groups`. Civic numbers are never
//! available to templates.

use crate::core::model::Person;
use crate::core::naming::TemplateError;
use connector_api::Attrs;
use minijinja::{Environment, UndefinedBehavior, Value};
use std::collections::BTreeMap;

/// The template environment shared by naming and mapping, with enid's filters.
pub fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.add_filter("first_word", |s: String| s.split_whitespace().next().unwrap_or("").to_string());
    env.add_filter("initials", |s: String| {
        s.split(|c: char| c.is_whitespace() || c == '-').filter_map(|w| w.chars().next()).collect::<String>()
    });
    env.add_filter("ascii", |s: String| crate::core::naming::normalize(&s, usize::MAX));
    env
}

/// The default LDAP attribute mapping (inetOrgPerson).
pub fn default_ldap_mapping() -> BTreeMap<String, String> {
    [
        ("uid", "{{ username }}"),
        ("givenName", "{{ given_name }}"),
        ("sn", "{{ family_name }}"),
        ("cn", "{{ display_name }}"),
        ("displayName", "{{ display_name }}"),
        ("employeeNumber", "{{ id }}"),
        ("employeeType", "{{ roles }}"),
        ("departmentNumber", "{{ school_units }}"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

#[derive(Debug)]
enum Compiled {
    /// A bare variable reference, read without the template engine.
    Var(String),
    /// A template registered in the environment under the attribute's name.
    Template,
}

/// A compiled attribute mapping for one target.
#[derive(Debug)]
pub struct Mapping {
    env: Environment<'static>,
    attrs: Vec<(String, Compiled)>,
    any_template: bool,
}

const VARIABLES: [&str; 10] = [
    "id",
    "username",
    "given_name",
    "family_name",
    "display_name",
    "role",
    "roles",
    "school_unit",
    "school_units",
    "groups",
];

impl Mapping {
    /// Compiles `templates` (attribute → template). An empty template leaves the attribute out.
    pub fn new(templates: &BTreeMap<String, String>) -> Result<Mapping, TemplateError> {
        let mut env = environment();
        let mut attrs = Vec::new();
        for (attr, template) in templates {
            if template.trim().is_empty() {
                continue;
            }
            let err = |reason: String| TemplateError { template: format!("{attr} = {template}"), reason };
            let inner = template.trim().strip_prefix("{{").and_then(|t| t.strip_suffix("}}")).map(str::trim);
            match inner {
                Some(var) if VARIABLES.contains(&var) => attrs.push((attr.clone(), Compiled::Var(var.to_string()))),
                _ => {
                    env.add_template_owned(attr.clone(), template.clone()).map_err(|e| err(e.to_string()))?;
                    attrs.push((attr.clone(), Compiled::Template));
                }
            }
        }
        let any_template = attrs.iter().any(|(_, c)| matches!(c, Compiled::Template));
        let mapping = Mapping { env, attrs, any_template };
        mapping
            .render(&sample_person())
            .map_err(|reason| TemplateError { template: "attribute mapping".into(), reason })?;
        Ok(mapping)
    }

    /// The attributes that hold exactly this variable (`{{ given_name }}`), as the target names
    /// them: where an account carries the person's given or family name.
    pub fn attributes_of(&self, var: &str) -> Vec<&str> {
        self.attrs.iter().filter(|(_, c)| matches!(c, Compiled::Var(v) if v == var)).map(|(a, _)| a.as_str()).collect()
    }

    /// The attribute names this mapping manages; only these are compared and changed.
    pub fn attribute_names(&self) -> Vec<String> {
        self.attrs.iter().map(|(a, _)| a.clone()).collect()
    }

    /// Renders every attribute for `person`.
    pub fn render(&self, person: &Person) -> Result<Attrs, String> {
        let ctx = if self.any_template { Some(context(person)) } else { None };
        let mut out = Attrs::new();
        for (attr, compiled) in &self.attrs {
            let mut values = match compiled {
                Compiled::Var(var) => variable(person, var),
                Compiled::Template => {
                    let tmpl = self.env.get_template(attr).map_err(|e| e.to_string())?;
                    let text =
                        tmpl.render(ctx.clone().unwrap_or_default()).map_err(|e| format!("attribute {attr}: {e}"))?;
                    text.lines().map(|l| l.trim().to_string()).collect()
                }
            };
            values.retain(|v| !v.is_empty());
            values.dedup();
            if !values.is_empty() {
                out.insert(attr.clone(), values);
            }
        }
        Ok(out)
    }
}

fn display_name(p: &Person) -> String {
    format!("{} {}", p.given_name, p.family_name).trim().to_string()
}

fn variable(p: &Person, var: &str) -> Vec<String> {
    let one = |s: &str| vec![s.to_string()];
    let all = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
    match var {
        "id" => one(p.id),
        "username" => one(p.username),
        "given_name" => one(p.given_name),
        "family_name" => one(p.family_name),
        "display_name" => vec![display_name(p)],
        "role" => p.roles.first().map(|s| s.to_string()).into_iter().collect(),
        "roles" => all(&p.roles),
        "school_unit" => p.school_units.first().map(|s| s.to_string()).into_iter().collect(),
        "school_units" => all(&p.school_units),
        "groups" => all(&p.groups),
        _ => Vec::new(),
    }
}

fn context(p: &Person) -> Value {
    let list = |v: &[&str]| Value::from(v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    minijinja::context! {
        id => p.id,
        username => p.username,
        given_name => p.given_name,
        family_name => p.family_name,
        display_name => display_name(p),
        role => p.roles.first().copied().unwrap_or_default(),
        roles => list(&p.roles),
        school_unit => p.school_units.first().copied().unwrap_or_default(),
        school_units => list(&p.school_units),
        groups => list(&p.groups),
    }
}

fn sample_person() -> Person<'static> {
    Person {
        id: "00000000-0000-0000-0000-000000000000",
        username: "anna.oberg",
        given_name: "Anna Maria",
        family_name: "Öberg",
        roles: vec!["student"],
        school_units: vec!["SKOLA1"],
        groups: vec!["7A"],
        start_date: None,
        end_date: None,
        protected: false,
    }
}

/// Names groups from the sources' school units and groups, and says who is a member.
#[derive(Debug)]
pub struct GroupNamer {
    env: Environment<'static>,
    school_groups: bool,
    roles: Vec<connector_api::Role>,
}

impl GroupNamer {
    /// Compiles the class-group template `name` (variables `school_unit`, `group`) and the
    /// school-group template `school_name` (variable `school_unit`; empty for none).
    pub fn new(name: &str, school_name: &str, members: &[String]) -> Result<GroupNamer, TemplateError> {
        let mut env = environment();
        let err = |t: &str, reason: String| TemplateError { template: t.to_string(), reason };
        env.add_template_owned("class", name.to_string()).map_err(|e| err(name, e.to_string()))?;
        let school_groups = !school_name.trim().is_empty();
        if school_groups {
            env.add_template_owned("school", school_name.to_string()).map_err(|e| err(school_name, e.to_string()))?;
        }
        let roles = members
            .iter()
            .map(|r| {
                connector_api::Role::parse(r).ok_or_else(|| err(r, "members must be \"student\" or \"staff\"".into()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let namer = GroupNamer { env, school_groups, roles };
        namer.render("class", "SKOLA1", "7A").map_err(|e| err(name, e))?;
        if school_groups {
            namer.render("school", "SKOLA1", "").map_err(|e| err(school_name, e))?;
        }
        Ok(namer)
    }

    fn render(&self, which: &str, school_unit: &str, group: &str) -> Result<String, String> {
        let t = self.env.get_template(which).map_err(|e| e.to_string())?;
        t.render(minijinja::context! { school_unit => school_unit, group => group })
            .map(|s| s.trim().to_string())
            .map_err(|e| e.to_string())
    }

    /// Every group and its members. `member_keys` holds the account key of each identity whose
    /// account is enabled (or about to be created). Pure.
    ///
    /// A name that renders empty means "no group"; a name that cannot be rendered is an error
    /// (the school unit, the group and why), never a missing group whose owned entry would then
    /// be deleted.
    pub fn desired(
        &self,
        resolution: &crate::core::identity::Resolution,
        authority: &crate::core::model::Authority,
        member_keys: &[(crate::core::model::IdentityId, String)],
    ) -> Result<BTreeMap<String, crate::core::plan::DesiredGroup>, String> {
        let keys: std::collections::HashMap<&str, &str> =
            member_keys.iter().map(|(id, k)| (id.as_str(), k.as_str())).collect();
        let mut names: std::collections::HashMap<(String, String, bool), Result<String, String>> =
            std::collections::HashMap::new();
        let mut out: BTreeMap<String, crate::core::plan::DesiredGroup> = BTreeMap::new();
        let mut add = |name: String, school: &str, key: &str| {
            if name.is_empty() {
                return;
            }
            let g = out.entry(name).or_default();
            if g.school.is_empty() {
                g.school = school.to_string();
            }
            g.members.insert(key.to_string());
        };
        for ident in &resolution.present {
            let Some(key) = keys.get(ident.id.as_str()) else { continue };
            for s in ident.authoritative(&authority.groups) {
                let r = &s.record;
                if !self.roles.contains(&r.role) {
                    continue;
                }
                let school = r.school_unit.as_deref().unwrap_or("");
                for g in &r.groups {
                    let name = names
                        .entry((school.to_string(), g.clone(), false))
                        .or_insert_with(|| self.render("class", school, g))
                        .clone()
                        .map_err(|e| format!("group name of {school}/{g}: {e}"))?;
                    add(name, school, key);
                }
                if self.school_groups && !school.is_empty() {
                    let name = names
                        .entry((school.to_string(), String::new(), true))
                        .or_insert_with(|| self.render("school", school, ""))
                        .clone()
                        .map_err(|e| format!("school group name of {school}: {e}"))?;
                    add(name, school, key);
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_name_that_cannot_be_rendered_is_an_error_not_a_missing_group() {
        let person = |id: &str, group: &str| crate::core::model::Identity {
            id: id.into(),
            is_new: false,
            records: vec![crate::core::model::Sourced {
                source: "sis".into(),
                record: connector_api::SourceRecord {
                    person_id: id.into(),
                    given_name: "A".into(),
                    family_name: "B".into(),
                    civic_no: None,
                    role: connector_api::Role::Student,
                    school_unit: Some("S1".into()),
                    groups: vec![group.into()],
                    start_date: None,
                    end_date: None,
                    location: String::new(),
                    email: None,
                    eppn: None,
                    protection: None,
                },
            }],
        };
        let resolution =
            crate::core::identity::Resolution { present: vec![person("1", "7A"), person("2", "9Z")], ..Default::default() };
        let keys = [("1".to_string(), "uid=a".to_string()), ("2".to_string(), "uid=b".to_string())];
        let template = "{{ school_unit }}-{% if group == \"9Z\" %}{{ nope }}{% else %}{{ group }}{% endif %}";
        let namer = GroupNamer::new(template, "", &["student".into()]).unwrap();
        let err = namer.desired(&resolution, &Default::default(), &keys).unwrap_err();
        assert!(err.starts_with("group name of S1/9Z: "), "{err}");
        let namer = GroupNamer::new("{{ school_unit }}-{{ group }}", "", &["student".into()]).unwrap();
        let groups = namer.desired(&resolution, &Default::default(), &keys).unwrap();
        assert_eq!(groups.keys().collect::<Vec<_>>(), ["S1-7A", "S1-9Z"]);
    }

    #[test]
    fn default_mapping_renders_without_the_engine() {
        let m = Mapping::new(&default_ldap_mapping()).unwrap();
        let attrs = m.render(&sample_person()).unwrap();
        let text = format!("{attrs:?}");
        expect_test::expect![[r#"{"cn": ["Anna Maria Öberg"], "departmentNumber": ["SKOLA1"], "displayName": ["Anna Maria Öberg"], "employeeNumber": ["00000000-0000-0000-0000-000000000000"], "employeeType": ["student"], "givenName": ["Anna Maria"], "sn": ["Öberg"], "uid": ["anna.oberg"]}"#]].assert_eq(&text);
    }

    #[test]
    fn templates_render_and_split_lines() {
        let mut t = BTreeMap::new();
        t.insert("mail".to_string(), "{{ username }}@skola.example.org".to_string());
        t.insert("description".to_string(), "{% for g in groups %}{{ school_unit }}-{{ g }}\n{% endfor %}".to_string());
        t.insert("cn".to_string(), String::new());
        let m = Mapping::new(&t).unwrap();
        let attrs = m.render(&sample_person()).unwrap();
        assert_eq!(attrs["mail"], vec!["anna.oberg@skola.example.org"]);
        assert_eq!(attrs["description"], vec!["SKOLA1-7A"]);
        assert!(!attrs.contains_key("cn"));
    }

    #[test]
    fn unknown_variables_are_caught_when_compiling() {
        let mut t = BTreeMap::new();
        t.insert("mail".to_string(), "{{ usernme }}@x".to_string());
        let err = Mapping::new(&t).unwrap_err();
        assert!(err.to_string().contains("undefined"), "{err}");
    }
}
