//! Attribute mapping: templates that turn a [`Person`] into target attributes.
//!
//! Each target attribute has a template. A template that is just one variable (`{{ given_name }}`)
//! is read directly, which keeps a 100,000-person plan fast; a list variable (`{{ roles }}`)
//! gives one value per element. Any other template is rendered by minijinja, and its output is
//! split on newlines into values. Empty values are dropped, so an attribute whose template
//! renders nothing is absent.
//!
//! Variables: `id`, `username`, `given_name`, `family_name`, `display_name`, `role` (the first),
//! `roles`, `school_unit` (the primary affiliation's school unit code), `school_unit_name` (its
//! name; the code where the source has none), `school_units` (every school unit in effect),
//! `groups`. Civic numbers are never available to templates.

use crate::core::model::Person;
use crate::core::naming::TemplateError;
use connector_api::{Attrs, GroupType, Value};
use minijinja::{Environment, UndefinedBehavior};
use serde::Deserialize;
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
    // A value put into a DN (a placement's OU): its special characters escaped.
    env.add_filter("dn", |s: String| connector_api::escape_dn_value(&s));
    env
}

/// One attribute's template as the policy gives it.
///
/// - a string: texts, one value per line of the output (empty lines dropped);
/// - `true` / `false`: that boolean;
/// - a table: one complex value, each sub-attribute a string template (one value) or a boolean
///   (`name.givenName = "{{ given_name }}"` in TOML is the table `name = { givenName = ... }`);
/// - an array of tables: several complex values (`emails = [{ value = "...", type = "work",
///   primary = true }]`).
///
/// A sub-attribute that renders empty is left out, and a complex value with nothing left is
/// dropped, so an attribute whose templates all render nothing is absent.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum AttrTemplate {
    Text(String),
    Bool(bool),
    Complex(BTreeMap<String, AttrTemplate>),
    List(Vec<BTreeMap<String, AttrTemplate>>),
}

impl AttrTemplate {
    /// A string template.
    pub fn text(t: impl Into<String>) -> AttrTemplate {
        AttrTemplate::Text(t.into())
    }

    /// Whether this template removes the attribute (an empty string).
    pub fn is_removal(&self) -> bool {
        matches!(self, AttrTemplate::Text(t) if t.trim().is_empty())
    }
}

impl std::fmt::Display for AttrTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AttrTemplate::Text(t) => f.write_str(t),
            AttrTemplate::Bool(b) => write!(f, "{b}"),
            AttrTemplate::Complex(_) | AttrTemplate::List(_) => f.write_str("(complex value)"),
        }
    }
}

#[derive(Debug)]
enum Compiled {
    /// A bare variable reference, read without the template engine.
    Var(String),
    /// A template registered in the environment under this name.
    Template(String),
    /// A constant boolean.
    Bool(bool),
    /// A constant text (a template without template syntax).
    Const(String),
    /// Complex values: per element, its sub-attributes.
    Complex(Vec<Vec<(String, Compiled)>>),
}

/// A compiled attribute mapping for one target.
#[derive(Debug)]
pub struct Mapping {
    env: Environment<'static>,
    /// Attribute → template; the names shared with every account rendered.
    attrs: Vec<(connector_api::Name, Compiled)>,
    any_template: bool,
}

const VARIABLES: [&str; 11] = [
    "id",
    "username",
    "given_name",
    "family_name",
    "display_name",
    "role",
    "roles",
    "school_unit",
    "school_unit_name",
    "school_units",
    "groups",
];

/// Compiles one string template: a bare variable, or a template added to `env` as `name`.
fn compile_text(env: &mut Environment<'static>, name: &str, template: &str) -> Result<Compiled, String> {
    if !template.contains("{{") && !template.contains("{%") {
        return Ok(Compiled::Const(template.trim().to_string()));
    }
    let inner = template.trim().strip_prefix("{{").and_then(|t| t.strip_suffix("}}")).map(str::trim);
    match inner {
        Some(var) if VARIABLES.contains(&var) => Ok(Compiled::Var(var.to_string())),
        _ => {
            env.add_template_owned(name.to_string(), template.to_string()).map_err(|e| e.to_string())?;
            Ok(Compiled::Template(name.to_string()))
        }
    }
}

impl Mapping {
    /// Compiles `templates` (attribute → template). An empty template leaves the attribute out.
    pub fn new(templates: &BTreeMap<String, AttrTemplate>) -> Result<Mapping, TemplateError> {
        let mut env = environment();
        let mut attrs = Vec::new();
        for (attr, template) in templates {
            if template.is_removal() {
                continue;
            }
            let err = |reason: String| TemplateError { template: format!("{attr} = {template}"), reason };
            let compiled = match template {
                AttrTemplate::Text(t) => compile_text(&mut env, attr, t).map_err(err)?,
                AttrTemplate::Bool(b) => Compiled::Bool(*b),
                AttrTemplate::Complex(one) => Compiled::Complex(vec![compile_fields(&mut env, attr, 0, one)?]),
                AttrTemplate::List(many) => Compiled::Complex(
                    many.iter()
                        .enumerate()
                        .map(|(i, f)| compile_fields(&mut env, attr, i, f))
                        .collect::<Result<_, _>>()?,
                ),
            };
            attrs.push((connector_api::Name::from(attr), compiled));
        }
        let any_template = attrs.iter().any(|(_, c)| c.uses_engine());
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
        self.attrs.iter().map(|(a, _)| a.to_string()).collect()
    }

    /// Renders every attribute for `person`.
    pub fn render(&self, person: &Person) -> Result<Attrs, String> {
        let ctx = if self.any_template { Some(context(person)) } else { None };
        let text = |compiled: &Compiled, attr: &str| -> Result<Vec<String>, String> {
            Ok(match compiled {
                Compiled::Var(var) => variable(person, var),
                Compiled::Template(name) => {
                    let tmpl = self.env.get_template(name).map_err(|e| e.to_string())?;
                    let out =
                        tmpl.render(ctx.clone().unwrap_or_default()).map_err(|e| format!("attribute {attr}: {e}"))?;
                    out.lines().map(|l| l.trim().to_string()).collect()
                }
                Compiled::Const(c) => c.lines().map(|l| l.trim().to_string()).collect(),
                Compiled::Bool(_) | Compiled::Complex(_) => Vec::new(),
            })
        };
        let mut out = Attrs::with_capacity(self.attrs.len());
        for (attr, compiled) in &self.attrs {
            let value = match compiled {
                Compiled::Bool(b) => Value::Bool(*b),
                Compiled::Complex(elements) => {
                    let mut values = Vec::with_capacity(elements.len());
                    for fields in elements {
                        let mut element = connector_api::Fields::new();
                        // An element whose templates all render nothing is no value (its
                        // constants, such as `type = "home"`, alone do not make one).
                        let (mut templated, mut rendered) = (false, false);
                        for (sub, c) in fields {
                            let v = match c {
                                Compiled::Bool(b) => Value::Bool(*b),
                                Compiled::Const(c) if c.is_empty() => continue,
                                Compiled::Const(c) => Value::text(c.clone()),
                                _ => {
                                    templated = true;
                                    let lines = text(c, &format!("{attr}.{sub}"))?;
                                    let one = lines.join(" ").trim().to_string();
                                    if one.is_empty() {
                                        continue;
                                    }
                                    rendered = true;
                                    Value::text(one)
                                }
                            };
                            element.insert(sub.clone(), v);
                        }
                        if rendered || !templated {
                            values.push(element);
                        }
                    }
                    Value::Complex(Box::new(values))
                }
                _ => {
                    let mut values = text(compiled, attr)?;
                    values.retain(|v| !v.is_empty());
                    values.dedup();
                    Value::Text(values.into())
                }
            };
            if !value.is_empty() {
                out.insert(attr.clone(), value);
            }
        }
        // An attribute that renders nothing is left out: give back its room.
        Ok(out.fitted())
    }
}

impl Compiled {
    fn uses_engine(&self) -> bool {
        match self {
            Compiled::Template(_) => true,
            Compiled::Complex(e) => e.iter().flatten().any(|(_, c)| c.uses_engine()),
            Compiled::Var(_) | Compiled::Bool(_) | Compiled::Const(_) => false,
        }
    }
}

/// The sub-attributes of element `i` of a complex attribute.
fn compile_fields(
    env: &mut Environment<'static>,
    attr: &str,
    i: usize,
    fields: &BTreeMap<String, AttrTemplate>,
) -> Result<Vec<(String, Compiled)>, TemplateError> {
    let mut out = Vec::new();
    for (sub, t) in fields {
        let err = |reason: String| TemplateError { template: format!("{attr}.{sub} = {t}"), reason };
        let c = match t {
            AttrTemplate::Text(text) => compile_text(env, &format!("{attr}.{i}.{sub}"), text).map_err(err)?,
            AttrTemplate::Bool(b) => Compiled::Bool(*b),
            AttrTemplate::Complex(_) | AttrTemplate::List(_) => {
                return Err(err("the parts of a complex value are string templates or booleans".into()));
            }
        };
        out.push((sub.clone(), c));
    }
    Ok(out)
}

/// The name shown for a person; a protected person's is the username, like their other names.
pub fn display_name(p: &Person) -> String {
    if p.protected {
        return p.username.to_string();
    }
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
        "school_unit" => p.school_unit.map(str::to_string).into_iter().collect(),
        "school_unit_name" => p.school_unit_name.map(str::to_string).into_iter().collect(),
        "school_units" => all(&p.school_units),
        "groups" => all(&p.groups),
        _ => Vec::new(),
    }
}

fn context(p: &Person) -> minijinja::Value {
    let list = |v: &[&str]| minijinja::Value::from(v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    minijinja::context! {
        id => p.id,
        username => p.username,
        given_name => p.given_name,
        family_name => p.family_name,
        display_name => display_name(p),
        role => p.roles.first().copied().unwrap_or_default(),
        roles => list(&p.roles),
        school_unit => p.school_unit.unwrap_or_default(),
        school_unit_name => p.school_unit_name.unwrap_or_default(),
        school_units => list(&p.school_units),
        groups => list(&p.groups),
        protected => p.protected,
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
        school_unit: Some("SKOLA1"),
        school_unit_name: Some("Skolan"),
        groups: vec!["7A"],
        start_date: None,
        end_date: None,
        protected: false,
        deceased: false,
    }
}

/// Names groups from the sources' school units and groups, and says who is a member.
#[derive(Debug)]
pub struct GroupNamer {
    env: Environment<'static>,
    school_groups: bool,
    roles: Vec<connector_api::Role>,
    types: Vec<GroupType>,
}

impl GroupNamer {
    /// Compiles the group template `name` (variables `school_unit`, `school_unit_name`, `group`,
    /// `group_type`) and the school-group template `school_name` (variables `school_unit`,
    /// `school_unit_name`; empty for none). Groups of the `types` only are made.
    pub fn new(
        name: &str,
        school_name: &str,
        members: &[String],
        types: &[GroupType],
    ) -> Result<GroupNamer, TemplateError> {
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
        let namer = GroupNamer { env, school_groups, roles, types: types.to_vec() };
        namer.render("class", &GroupVars::sample("7A")).map_err(|e| err(name, e))?;
        if school_groups {
            namer.render("school", &GroupVars::sample("")).map_err(|e| err(school_name, e))?;
        }
        Ok(namer)
    }

    fn render(&self, which: &str, v: &GroupVars<'_>) -> Result<String, String> {
        let t = self.env.get_template(which).map_err(|e| e.to_string())?;
        t.render(minijinja::context! {
            school_unit => v.school_unit,
            school_unit_name => v.school_unit_name,
            group => v.group,
            group_type => v.group_type,
        })
        .map(|s| s.trim().to_string())
        .map_err(|e| e.to_string())
    }

    /// The policy key of the template that gives this group its name: `school_name` when it is
    /// the group of school unit `school`, else `name` (for a message that says what to change).
    pub fn template_of(&self, name: &str, school: &str) -> &'static str {
        if self.school_groups && self.render("school", &GroupVars::school(school, school)).is_ok_and(|n| n == name) {
            "school_name"
        } else {
            "name"
        }
    }

    /// Every group and its members. `members` holds, for each identity whose account is enabled
    /// after the plan (or about to be created), its member value when the plan knows it, or
    /// `None` when the target gives it at apply (a new account's key). Pure.
    ///
    /// A name that renders empty means "no group"; a name that cannot be rendered is an error
    /// (the school unit, the group and why), never a missing group whose owned entry would then
    /// be deleted.
    pub fn desired(
        &self,
        resolution: &crate::core::identity::Resolution,
        authority: &crate::core::model::Authority,
        members: &[(crate::core::model::IdentityId, Option<String>)],
        today: chrono::NaiveDate,
    ) -> Result<BTreeMap<String, crate::core::plan::DesiredGroup>, String> {
        let values: std::collections::HashMap<&str, &Option<String>> =
            members.iter().map(|(id, v)| (id.as_str(), v)).collect();
        // Rendered names by (school unit, group, type), the school groups under an empty group.
        let mut names: std::collections::HashMap<(String, String, Option<GroupType>), Result<String, String>> =
            std::collections::HashMap::new();
        let mut out: BTreeMap<String, crate::core::plan::DesiredGroup> = BTreeMap::new();
        let mut add = |name: String, school: &str, id: &str, value: &Option<String>| {
            if name.is_empty() {
                return;
            }
            let g = out.entry(name).or_default();
            if g.school.is_empty() {
                g.school = school.to_string();
            }
            g.members.insert(id.into(), value.clone());
        };
        for ident in &resolution.present {
            let Some(value) = values.get(ident.id.as_str()).copied() else { continue };
            for s in ident.authoritative(&authority.groups) {
                let r = &s.record;
                let affs: Vec<&connector_api::Affiliation> = r.ties().collect();
                let current = crate::core::model::in_effect(&affs, today);
                // A person is a member in a role the policy names: their role at the group's
                // school unit, or any of their roles when they have no tie there.
                let member_at = |school: Option<&str>| {
                    let at: Vec<_> = current.iter().filter(|a| a.school_unit.as_deref() == school).collect();
                    if at.is_empty() {
                        current.iter().any(|a| self.roles.contains(&a.role))
                    } else {
                        at.iter().any(|a| self.roles.contains(&a.role))
                    }
                };
                let name_of = |school: Option<&str>| unit_name(&current, school).to_string();
                for g in r.groups.iter().filter(|g| g.holds_on(today) && self.types.contains(&g.kind)) {
                    let school = g.school_unit.as_deref();
                    // A tie at the group's school unit that ended (or has not begun) is not a
                    // tie elsewhere: the group is of a school the person left (or will join).
                    if crate::core::model::away_from(school, &affs, &current) || !member_at(school) {
                        continue;
                    }
                    let unit = school.unwrap_or("");
                    let name = names
                        .entry((unit.to_string(), g.name.to_string(), Some(g.kind)))
                        .or_insert_with(|| {
                            let vars = GroupVars {
                                school_unit: unit,
                                school_unit_name: &name_of(school),
                                group: &g.name,
                                group_type: g.kind.as_str(),
                            };
                            self.render("class", &vars)
                        })
                        .clone()
                        .map_err(|e| format!("group name of {unit}/{}: {e}", g.name))?;
                    add(name, unit, &ident.id, value);
                }
                if self.school_groups {
                    for a in current.iter().filter(|a| self.roles.contains(&a.role)) {
                        let Some(unit) = a.school_unit.as_deref() else { continue };
                        let name = names
                            .entry((unit.to_string(), String::new(), None))
                            .or_insert_with(|| self.render("school", &GroupVars::school(unit, &name_of(Some(unit)))))
                            .clone()
                            .map_err(|e| format!("school group name of {unit}: {e}"))?;
                        add(name, unit, &ident.id, value);
                    }
                }
            }
        }
        Ok(out)
    }
}

/// The name of school unit `school` as the affiliations give it; its code where none does.
fn unit_name<'r>(current: &[&'r connector_api::Affiliation], school: Option<&'r str>) -> &'r str {
    current
        .iter()
        .find(|a| a.school_unit.as_deref() == school)
        .and_then(|a| a.school_unit_name())
        .or(school)
        .unwrap_or("")
}

/// What a group name template sees.
struct GroupVars<'a> {
    school_unit: &'a str,
    school_unit_name: &'a str,
    group: &'a str,
    group_type: &'a str,
}

impl<'a> GroupVars<'a> {
    fn sample(group: &'a str) -> GroupVars<'a> {
        GroupVars { school_unit: "SKOLA1", school_unit_name: "Skolan", group, group_type: "class" }
    }

    fn school(school_unit: &'a str, school_unit_name: &'a str) -> GroupVars<'a> {
        GroupVars { school_unit, school_unit_name, group: "", group_type: "" }
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
            records: connector_api::source::smallvec![crate::core::model::Sourced {
                source: "sis".into(),
                record: Box::new(connector_api::SourceRecord {
                    person_id: id.into(),
                    given_name: "A".into(),
                    family_name: "B".into(),
                    civic_no: None,
                    affiliations: vec![
                        connector_api::Affiliation::new(Some("S1".into()), connector_api::Role::Student).into(),
                    ]
                    .into(),
                    groups: vec![connector_api::GroupMembership::class(Some("S1".into()), group).into()].into(),
                    location: Default::default(),
                    extras: connector_api::Extras::new(None, None, Box::default()),
                    protection: None,
                    deceased: false,
                }),
            }],
            primary: None,
        };
        let resolution = crate::core::identity::Resolution {
            present: vec![person("1", "7A"), person("2", "9Z")],
            ..Default::default()
        };
        let keys = [("1".into(), Some("uid=a".to_string())), ("2".into(), None)];
        let template = "{{ school_unit }}-{% if group == \"9Z\" %}{{ nope }}{% else %}{{ group }}{% endif %}";
        let namer = GroupNamer::new(template, "", &["student".into()], &GroupType::ALL).unwrap();
        let err = namer.desired(&resolution, &Default::default(), &keys, chrono::NaiveDate::MIN).unwrap_err();
        assert!(err.starts_with("group name of S1/9Z: "), "{err}");
        let namer = GroupNamer::new("{{ school_unit }}-{{ group }}", "", &["student".into()], &GroupType::ALL).unwrap();
        let groups = namer.desired(&resolution, &Default::default(), &keys, chrono::NaiveDate::MIN).unwrap();
        assert_eq!(groups.keys().collect::<Vec<_>>(), ["S1-7A", "S1-9Z"]);
    }

    #[test]
    fn groups_belong_to_their_own_school_unit_and_a_policy_selects_their_types() {
        use connector_api::{Affiliation, AffiliationKind, GroupMembership, Role, TieDetails};
        let group = |school: &str, name: &str, kind: GroupType, end: Option<&str>| GroupMembership {
            kind,
            end_date: end.map(|d| d.parse().unwrap()),
            ..GroupMembership::class(Some(school.into()), name)
        };
        let teacher = crate::core::model::Identity {
            id: "t".into(),
            is_new: false,
            records: connector_api::source::smallvec![crate::core::model::Sourced {
                source: "sis".into(),
                record: Box::new(connector_api::SourceRecord {
                    person_id: "t".into(),
                    given_name: "A".into(),
                    family_name: "B".into(),
                    civic_no: None,
                    affiliations: vec![
                        Affiliation {
                            details: TieDetails { school_unit_name: Some("Norra".into()), ..Default::default() }
                                .boxed(),
                            ..Affiliation::new(Some("S1".into()), Role::Staff)
                        }
                        .into(),
                        Affiliation { kind: AffiliationKind::Duty, ..Affiliation::new(Some("S2".into()), Role::Staff) }
                            .into(),
                    ]
                    .into(),
                    groups: vec![
                        group("S1", "MA7", GroupType::Teaching, None).into(),
                        group("S2", "7A", GroupType::Class, None).into(),
                        group("S2", "M3", GroupType::Mentor, None).into(),
                        group("S2", "OLD", GroupType::Class, Some("2026-06-10")).into(),
                    ]
                    .into(),
                    location: Default::default(),
                    extras: connector_api::Extras::new(None, None, Box::default()),
                    protection: None,
                    deceased: false,
                }),
            }],
            primary: None,
        };
        let resolution = crate::core::identity::Resolution { present: vec![teacher], ..Default::default() };
        let keys = vec![("t".into(), Some("uid=t".to_string()))];
        let today: chrono::NaiveDate = "2026-12-03".parse().unwrap();
        let template = "{{ school_unit }}-{{ group_type }}-{{ group }}";
        let all = GroupNamer::new(template, "{{ school_unit_name }}", &["staff".into()], &GroupType::ALL).unwrap();
        let groups = all.desired(&resolution, &Default::default(), &keys, today).unwrap();
        let names: Vec<(&str, &str)> = groups.iter().map(|(n, g)| (n.as_str(), g.school.as_str())).collect();
        assert_eq!(
            names,
            [("Norra", "S1"), ("S1-teaching-MA7", "S1"), ("S2", "S2"), ("S2-class-7A", "S2"), ("S2-mentor-M3", "S2")],
            "a membership that ended is gone; a school with no name is named by its code"
        );
        let classes = GroupNamer::new(template, "", &["staff".into()], &[GroupType::Class]).unwrap();
        let groups = classes.desired(&resolution, &Default::default(), &keys, today).unwrap();
        assert_eq!(groups.keys().collect::<Vec<_>>(), ["S2-class-7A"]);
        let pupils = GroupNamer::new(template, "", &["student".into()], &GroupType::ALL).unwrap();
        assert!(
            pupils.desired(&resolution, &Default::default(), &keys, today).unwrap().is_empty(),
            "staff are not pupils"
        );
    }

    fn templates(pairs: &[(&str, &str)]) -> BTreeMap<String, AttrTemplate> {
        pairs.iter().map(|(k, v)| (k.to_string(), AttrTemplate::text(*v))).collect()
    }

    #[test]
    fn bare_variables_render_without_the_engine() {
        let m = Mapping::new(&templates(&[
            ("uid", "{{ username }}"),
            ("cn", "{{ display_name }}"),
            ("employeeType", "{{ roles }}"),
            ("departmentNumber", "{{ school_units }}"),
        ]))
        .unwrap();
        assert!(!m.any_template);
        let attrs = m.render(&sample_person()).unwrap();
        let text = serde_json::to_string(&attrs).unwrap();
        expect_test::expect![[r#"{"cn":["Anna Maria Öberg"],"departmentNumber":["SKOLA1"],"employeeType":["student"],"uid":["anna.oberg"]}"#]].assert_eq(&text);
    }

    #[test]
    fn templates_render_and_split_lines() {
        let mut t = templates(&[
            ("mail", "{{ username }}@skola.example.org"),
            ("description", "{% for g in groups %}{{ school_unit }}-{{ g }}\n{% endfor %}"),
            ("cn", ""),
        ]);
        t.insert("mail".into(), AttrTemplate::text("{{ username }}@skola.example.org"));
        let m = Mapping::new(&t).unwrap();
        let attrs = m.render(&sample_person()).unwrap();
        assert_eq!(attrs["mail"], Value::text("anna.oberg@skola.example.org"));
        assert_eq!(attrs["description"], Value::text("SKOLA1-7A"));
        assert!(!attrs.contains_key("cn"));
    }

    /// How a policy writes typed and complex values, as TOML gives them (SCIM `name`, `emails`,
    /// a boolean); sub-attributes that render empty are left out, and so is an empty element.
    #[test]
    fn tables_give_complex_values_and_booleans_stay_booleans() {
        #[derive(Deserialize)]
        struct P {
            attributes: BTreeMap<String, AttrTemplate>,
        }
        let p: P = toml::from_str(
            r#"
            [attributes]
            name.givenName = "{{ given_name }}"
            name.familyName = "{{ family_name }}"
            name.honorificPrefix = "{{ '' }}"
            emails = [{ value = "{{ username }}@skola.se", type = "work", primary = true },
                      { value = "{% if false %}x{% endif %}", type = "home" }]
            locked = false
            "#,
        )
        .unwrap();
        let m = Mapping::new(&p.attributes).unwrap();
        let attrs = m.render(&sample_person()).unwrap();
        expect_test::expect![[r#"{"emails":[{"primary":true,"type":["work"],"value":["anna.oberg@skola.se"]}],"locked":false,"name":[{"familyName":["Öberg"],"givenName":["Anna Maria"]}]}"#]]
            .assert_eq(&serde_json::to_string(&attrs).unwrap());
        let nested = toml::from_str::<P>("[attributes]\nname.given.x = \"a\"\n").unwrap();
        let err = Mapping::new(&nested.attributes).unwrap_err();
        assert!(err.to_string().contains("string templates or booleans"), "{err}");
    }

    #[test]
    fn a_protected_persons_names_are_the_username() {
        let m = Mapping::new(&templates(&[("cn", "{{ display_name }}"), ("sn", "{{ family_name }}")])).unwrap();
        let mut p = sample_person();
        p.protected = true;
        let p = p.pseudonymised();
        let attrs = m.render(&p).unwrap();
        assert_eq!(attrs["cn"], Value::text("anna.oberg"));
        assert_eq!(attrs["sn"], Value::text("anna.oberg"));
    }

    #[test]
    fn unknown_variables_are_caught_when_compiling() {
        let mut t = BTreeMap::new();
        t.insert("mail".to_string(), AttrTemplate::text("{{ usernme }}@x"));
        let err = Mapping::new(&t).unwrap_err();
        assert!(err.to_string().contains("undefined"), "{err}");
    }
}
