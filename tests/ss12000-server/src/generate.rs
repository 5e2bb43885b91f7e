//! The seeded generator: a municipality's schools with pupils, staff and guardians, the same
//! for the same parameters on every run. It includes on purpose the people a client gets wrong:
//! a protected person, a person with a confidentiality marking, a coordination number, a
//! temporary number with letters, a person without a civic number, a deceased and an emigrated
//! pupil, a former pupil whose enrolment ended, a teacher at two school units, guardians (persons
//! with neither enrolment nor duty) and names with å, ä, ö and double names. Civic numbers are
//! test numbers: valid dates and check digits, birth numbers 900–999 (`civic`).

use crate::civic;
use crate::model::*;
use crate::rng::Rng;
use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use std::collections::HashSet;

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenParams {
    /// How many persons in all (pupils, staff and guardians); at least `MIN_PERSONS`.
    pub persons: usize,
    /// The seed: the same seed and parameters give the same data.
    pub seed: u64,
    /// The day the data describes: current enrolments are open on it, the former pupil's
    /// enrolment ended before it, and every `meta` time lies before it.
    pub today: NaiveDate,
}

/// The smallest data set that still holds every special person.
pub const MIN_PERSONS: usize = 60;

/// The generator refused its parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GenerateError {
    /// Fewer persons than the special cases need.
    TooFewPersons {
        /// What was asked for.
        asked: usize,
    },
}

impl std::fmt::Display for GenerateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GenerateError::TooFewPersons { asked } => {
                write!(f, "ss12000-server: {asked} persons asked for; the generator needs at least {MIN_PERSONS}")
            }
        }
    }
}

impl std::error::Error for GenerateError {}

/// The ids of the special persons, so that tests can find them without searching.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Specials {
    /// A pupil with `Skyddad folkbokföring` (no address).
    pub protected: String,
    /// A pupil with `Sekretessmarkering`.
    pub confidential: String,
    /// A pupil with a coordination number (samordningsnummer: day + 60).
    pub coordination_no: String,
    /// A pupil with a temporary number with letters (`YYYYMMDDTFnn`).
    pub temporary_no: String,
    /// A pupil without any civic number.
    pub no_civic_no: String,
    /// A pupil whose `personStatus` is `Avliden`.
    pub deceased: String,
    /// A pupil whose `personStatus` is `Utvandrad`.
    pub emigrated: String,
    /// A former pupil: the only enrolment ended before `today`, no current group.
    pub former_pupil: String,
    /// A teacher with duties at two school units.
    pub two_unit_teacher: String,
    /// A guardian (no enrolment, no duty).
    pub guardian: String,
    /// A pupil with a double given name and a double family name.
    pub double_names: String,
}

/// What the generator made.
#[derive(Debug, Clone)]
pub struct Generated {
    /// The data.
    pub dataset: Dataset,
    /// Where the special persons are.
    pub specials: Specials,
}

#[rustfmt::skip]
const FEMALE: &[&str] = &[
    "Anna", "Åsa", "Märta", "Linnéa", "Elsa", "Maja", "Ebba", "Sofia", "Ängla", "Ida", "Noor", "Fatima", "Wilma",
    "Saga", "Alice", "Anna-Karin", "Karin", "Björg", "Inés", "Tuva", "Ellinor", "Hjördis", "Stina", "Lovisa",
    "Ester",
];
#[rustfmt::skip]
const MALE: &[&str] = &[
    "Björn", "Örjan", "Jöns", "Åke", "Erik", "Lars", "Oskar", "Ali", "Mohammed", "Liam", "Hugo", "Nils", "Måns",
    "Göran", "Pär", "Sven-Erik", "Karl", "Elias", "Olle", "Jörgen", "Noah", "Viggo", "Tor", "Håkan", "Yusuf",
];
#[rustfmt::skip]
const FAMILY: &[&str] = &[
    "Andersson", "Johansson", "Karlsson", "Nilsson", "Eriksson", "Larsson", "Olsson", "Persson", "Svensson",
    "Gustafsson", "Öberg", "Åberg", "Ängström", "Löfgren", "Söderström", "Lindström-Åberg", "Nordén", "Björklund",
    "Hägg", "Ström", "Ali", "Hassan", "Nguyen", "Müller", "Sjöö", "Westerlund", "Bäckström", "Dahl", "Holm",
    "Ekström",
];
const STREETS: &[&str] = &["Storgatan", "Kyrkvägen", "Ängsvägen", "Björkallén", "Sjögatan", "Skolgatan", "Åsvägen"];
const SUBJECTS: &[&str] = &["Matematik", "Svenska"];

/// Generates the data set for `params`.
pub fn generate(params: &GenParams) -> Result<Generated, GenerateError> {
    if params.persons < MIN_PERSONS {
        return Err(GenerateError::TooFewPersons { asked: params.persons });
    }
    Gen::new(params).run()
}

/// What a school unit is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UnitKind {
    Grundskola,
    Gymnasium,
    Fritidshem,
}

struct Unit {
    id: String,
    kind: UnitKind,
    code: String,
}

struct Gen<'a> {
    p: &'a GenParams,
    rng: Rng,
    ds: Dataset,
    used_civic: HashSet<String>,
    /// The first day of the current school year (mid-August).
    term_start: NaiveDate,
    /// The first `meta.created` of persons; everything else is spread after it.
    base: DateTime<Utc>,
    stamp: i64,
    serial: u32,
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    // Callers pass valid months and days (1–28 or fixed term dates), so this never falls back.
    NaiveDate::from_ymd_opt(y, m, d).unwrap_or(NaiveDate::MIN)
}

/// A lower-case ASCII form of a name for addresses (å→a, ä→a, ö→o, é→e, ü→u, others dropped).
fn ascii(name: &str) -> String {
    name.chars()
        .filter_map(|c| match c.to_lowercase().next().unwrap_or(c) {
            'å' | 'ä' | 'á' => Some('a'),
            'ö' => Some('o'),
            'é' => Some('e'),
            'ü' => Some('u'),
            c if c.is_ascii_alphabetic() => Some(c),
            _ => None,
        })
        .collect()
}

impl<'a> Gen<'a> {
    fn new(p: &'a GenParams) -> Gen<'a> {
        let year = if p.today.month() >= 8 { p.today.year() } else { p.today.year() - 1 };
        let base = (p.today - Duration::days(60)).and_hms_opt(3, 0, 0).unwrap_or_default().and_utc();
        Gen {
            p,
            rng: Rng::new(p.seed),
            ds: Dataset::default(),
            used_civic: HashSet::new(),
            term_start: date(year, 8, 15),
            base,
            stamp: 0,
            serial: 0,
        }
    }

    /// A fresh `meta`: every entity gets its own second, in creation order, all before `today`.
    fn meta(&mut self) -> Meta {
        self.stamp += 1;
        Meta::at(self.base + Duration::seconds(self.stamp))
    }

    fn civic(&mut self, birth: NaiveDate, coordination: bool) -> String {
        loop {
            self.serial += 1;
            let n = civic::civic_no(birth, self.rng.below(100) as u32, coordination);
            if self.used_civic.insert(n.clone()) {
                return n;
            }
        }
    }

    fn run(mut self) -> Result<Generated, GenerateError> {
        let n = self.p.persons;
        let n_staff = (n / 10).max(12);
        let n_guardians = n / 5;
        let n_pupils = n - n_staff - n_guardians;

        let units = self.organisations(n_pupils);
        let enrolling: Vec<usize> = (0..units.len()).filter(|&i| units[i].kind != UnitKind::Fritidshem).collect();
        let fritids = units.iter().position(|u| u.kind == UnitKind::Fritidshem).unwrap_or(0);

        // Pupils, round robin over the units that enrol.
        let mut pupils_at: Vec<Vec<(usize, u8)>> = vec![Vec::new(); units.len()];
        let mut specials = Specials::default();
        for i in 0..n_pupils {
            let u = enrolling[i % enrolling.len()];
            let (school_type, year) = match units[u].kind {
                UnitKind::Gymnasium => (SchoolType::Gy, 1 + self.rng.below(3) as u8),
                _ => {
                    let y = self.rng.below(10) as u8;
                    (if y == 0 { SchoolType::Fklass } else { SchoolType::Gr }, y)
                }
            };
            let idx = self.pupil(i, &units[u], school_type, year, &mut specials);
            if i != 6 {
                pupils_at[u].push((idx, year));
            }
        }

        // Staff, round robin over every unit.
        let mut teachers_at: Vec<Vec<usize>> = vec![Vec::new(); units.len()];
        let mut staff_count = vec![0usize; units.len()];
        for i in 0..n_staff {
            let u = i % units.len();
            let pos = staff_count[u];
            staff_count[u] += 1;
            let role = match (pos, units[u].kind) {
                (0, _) => DutyRole::Principal,
                (3, _) => DutyRole::SchoolNurse,
                (5, _) => DutyRole::Counsellor,
                (7, _) => DutyRole::TeachingAssistant,
                (_, UnitKind::Fritidshem) => DutyRole::LeisureTeacher,
                _ => DutyRole::Teacher,
            };
            let duty = self.staff(i, &units[u].id, role);
            if role == DutyRole::Teacher {
                teachers_at[u].push(duty);
                // The first teacher and about one in seventeen more also serve at a second unit.
                if specials.two_unit_teacher.is_empty() || i % 17 == 0 {
                    let other = enrolling[(enrolling.iter().position(|&e| e == u).unwrap_or(0) + 1) % enrolling.len()];
                    let person = self.ds.duties[duty].person.clone();
                    self.ds.duties[duty].duty_percent = Some(60);
                    let meta = self.meta();
                    let signature = self.ds.duties[duty].signature.clone();
                    self.ds.duties.push(Duty {
                        id: self.rng.uuid(),
                        meta,
                        person: person.clone(),
                        duty_at: units[other].id.clone(),
                        role: DutyRole::Teacher,
                        signature,
                        duty_percent: Some(40),
                        start_date: self.term_start - Duration::days(365),
                        end_date: None,
                        assignment_roles: Vec::new(),
                    });
                    teachers_at[other].push(self.ds.duties.len() - 1);
                    if specials.two_unit_teacher.is_empty() {
                        specials.two_unit_teacher = person;
                    }
                }
            }
        }

        // Guardians: two for each of the first pupils, one for the next, none for the rest.
        // Pupils come first in `persons`, so a pupil's number is its index there.
        let pairs = n_guardians * 2 / 3 / 2 * 2;
        for g in 0..n_guardians {
            let child = if g < pairs { g / 2 } else { pairs / 2 + (g - pairs) };
            let child = child.min(n_pupils - 1);
            let relation = if g % 41 == 40 { RelationType::Appointed } else { RelationType::Guardian };
            let gid = self.guardian(g);
            if g == 0 {
                specials.guardian = gid.clone();
            }
            self.ds.persons[child].responsibles.push(Responsible { person: gid, relation });
        }

        // Groups, activities and placements per unit.
        for (u, unit) in units.iter().enumerate() {
            self.groups(unit, &pupils_at[u], &teachers_at[u], &units[fritids]);
        }
        Ok(Generated { dataset: self.ds, specials })
    }

    fn organisations(&mut self, n_pupils: usize) -> Vec<Unit> {
        let start = date(2010, 1, 1);
        let top = self.rng.uuid();
        let meta = Meta::at(self.base - Duration::days(1));
        self.ds.organisations.push(Organisation {
            id: top.clone(),
            meta,
            display_name: "Ekby kommun".into(),
            org_type: OrgType::Huvudman,
            organisation_code: Some("EKBY".into()),
            school_unit_code: None,
            school_types: Vec::new(),
            municipality_code: Some("0999".into()),
            parent: None,
            start_date: Some(start),
            end_date: None,
        });
        let dept = self.rng.uuid();
        self.ds.organisations.push(Organisation {
            id: dept.clone(),
            meta,
            display_name: "Utbildningsförvaltningen".into(),
            org_type: OrgType::Forvaltning,
            organisation_code: Some("UF".into()),
            school_unit_code: None,
            school_types: Vec::new(),
            municipality_code: Some("0999".into()),
            parent: Some(top),
            start_date: Some(start),
            end_date: None,
        });
        let n_units = (n_pupils / 350).max(3);
        let names =
            ["Björkskolan", "Åsgymnasiet", "Fritidshemmet Solrosen", "Ängsskolan", "Sjöskolan", "Östra gymnasiet"];
        let mut units = Vec::new();
        for i in 0..n_units {
            let kind = match i {
                1 => UnitKind::Gymnasium,
                2 => UnitKind::Fritidshem,
                _ if i % 3 == 2 => UnitKind::Gymnasium,
                _ => UnitKind::Grundskola,
            };
            let name = match (names.get(i), kind) {
                (Some(name), _) => name.to_string(),
                (None, UnitKind::Gymnasium) => format!("Ekby gymnasium {i}"),
                (None, _) => format!("Ekby skola {i}"),
            };
            let types = match kind {
                UnitKind::Grundskola => vec![SchoolType::Fklass, SchoolType::Gr, SchoolType::Fth],
                UnitKind::Gymnasium => vec![SchoolType::Gy],
                UnitKind::Fritidshem => vec![SchoolType::Fth],
            };
            let id = self.rng.uuid();
            let code = format!("{:08}", 90_000_000 + i);
            self.ds.organisations.push(Organisation {
                id: id.clone(),
                meta,
                display_name: name,
                org_type: OrgType::Skolenhet,
                organisation_code: Some(format!("SE{i:03}")),
                school_unit_code: Some(code.clone()),
                school_types: types,
                municipality_code: Some("0999".into()),
                parent: Some(dept.clone()),
                start_date: Some(start),
                end_date: None,
            });
            units.push(Unit { id, kind, code });
        }
        units
    }

    fn name(&mut self, sex: Sex) -> (String, Option<String>, String) {
        let given = match sex {
            Sex::Female => self.rng.pick(FEMALE).to_string(),
            _ => self.rng.pick(MALE).to_string(),
        };
        let middle = if self.rng.chance(8) { Some(self.rng.pick(FAMILY).to_string()) } else { None };
        (given, middle, self.rng.pick(FAMILY).to_string())
    }

    fn address(&mut self) -> Address {
        Address {
            address_type: if self.rng.chance(3) { AddressType::SpecialPostal } else { AddressType::Registered },
            street_address: format!("{} {}", self.rng.pick(STREETS), 1 + self.rng.below(80)),
            postal_code: format!("999 {:02}", self.rng.below(100)),
            locality: "Ekby".into(),
        }
    }

    fn person(&mut self, birth: NaiveDate, sex: Sex) -> Person {
        let (given, middle, family) = self.name(sex);
        let meta = self.meta();
        let civic = self.civic(birth, false);
        let address = self.address();
        Person {
            id: self.rng.uuid(),
            meta,
            given_name: given,
            middle_name: middle,
            family_name: family,
            civic_no: Some(civic),
            birth_date: Some(birth),
            sex,
            security_marking: SecurityMarking::None,
            status: PersonStatus::Active,
            eppns: Vec::new(),
            external_identifiers: Vec::new(),
            emails: Vec::new(),
            addresses: vec![address],
            enrolments: Vec::new(),
            responsibles: Vec::new(),
        }
    }

    fn sex(&mut self) -> Sex {
        if self.rng.chance(50) { Sex::Female } else { Sex::Male }
    }

    /// Adds pupil number `i` and returns its index in `persons`.
    fn pupil(&mut self, i: usize, unit: &Unit, school_type: SchoolType, year: u8, sp: &mut Specials) -> usize {
        let start_year = self.term_start.year();
        let age_at_start = if school_type == SchoolType::Gy { 15 + year as i32 } else { 6 + year as i32 };
        let birth = date(start_year - age_at_start, 1 + self.rng.below(12) as u32, 1 + self.rng.below(28) as u32);
        let sex = self.sex();
        let mut p = self.person(birth, sex);
        let local = format!(
            "{}{}{}",
            ascii(&p.given_name).chars().take(3).collect::<String>(),
            ascii(&p.family_name).chars().take(3).collect::<String>(),
            i
        );
        p.eppns.push(format!("{local}@elev.ekby.example"));
        p.emails.push(Email { value: format!("{local}@elev.ekby.example"), email_type: EmailType::SchoolPupil });
        if i.is_multiple_of(3) {
            p.external_identifiers.push(ExternalIdentifier {
                value: format!("{:05}", i / 3),
                context: format!("urn:ekby:skolenhet:{}:elevnummer", unit.code),
                globally_unique: false,
            });
        }
        let years_here = if school_type == SchoolType::Gy { year as i32 - 1 } else { year as i32 };
        let mut enrolment = Enrolment {
            enroled_at: unit.id.clone(),
            school_type,
            school_year: Some(year),
            start_date: date(start_year - years_here, 8, 15),
            end_date: if school_type == SchoolType::Gy {
                Some(date(start_year + 4 - year as i32, 6, 15))
            } else {
                None
            },
            education_code: if school_type == SchoolType::Gy { Some("NATNA".into()) } else { None },
        };
        match i {
            0 => {
                p.security_marking = SecurityMarking::Protected;
                p.addresses.clear();
                sp.protected = p.id.clone();
            }
            1 => {
                p.security_marking = SecurityMarking::Confidential;
                sp.confidential = p.id.clone();
            }
            2 => {
                if let Some(c) = p.civic_no.take() {
                    self.used_civic.remove(&c);
                }
                p.civic_no = Some(self.civic(birth, true));
                sp.coordination_no = p.id.clone();
            }
            3 => {
                p.civic_no = Some(format!("{}TF{:02}", birth.format("%Y%m%d"), 1 + i % 90));
                sp.temporary_no = p.id.clone();
            }
            4 => {
                p.civic_no = None;
                sp.no_civic_no = p.id.clone();
            }
            5 => {
                p.status = PersonStatus::Deceased;
                sp.deceased = p.id.clone();
            }
            6 => {
                // Left at the end of last school year: the enrolment is over, no group holds them.
                enrolment.end_date = Some(self.p.today - Duration::days(60));
                sp.former_pupil = p.id.clone();
            }
            7 => {
                p.status = PersonStatus::Emigrated;
                sp.emigrated = p.id.clone();
            }
            8 => {
                p.given_name = if sex == Sex::Female { "Anna-Karin".into() } else { "Sven-Erik".into() };
                p.middle_name = Some("Öberg".into());
                p.family_name = "Lindström-Åberg".into();
                sp.double_names = p.id.clone();
            }
            _ => {}
        }
        p.enrolments.push(enrolment);
        self.ds.persons.push(p);
        self.ds.persons.len() - 1
    }

    /// Adds staff member number `i` with one duty and returns the duty's index.
    fn staff(&mut self, i: usize, unit: &str, role: DutyRole) -> usize {
        let birth = date(
            self.term_start.year() - 25 - self.rng.below(40) as i32,
            1 + self.rng.below(12) as u32,
            1 + self.rng.below(28) as u32,
        );
        let sex = self.sex();
        let mut p = self.person(birth, sex);
        let local = format!("{}.{}{}", ascii(&p.given_name), ascii(&p.family_name), i);
        p.eppns.push(format!("{local}@ekby.example"));
        p.emails.push(Email { value: format!("{local}@ekby.example"), email_type: EmailType::SchoolStaff });
        p.external_identifiers.push(ExternalIdentifier {
            value: format!("HR{:06}", 100_000 + i),
            context: "urn:ekby:hr:anstallningsnummer".into(),
            globally_unique: true,
        });
        let signature: String = [&p.given_name, &p.family_name]
            .iter()
            .filter_map(|s| ascii(s).chars().next())
            .chain(std::iter::once((b'A' + (i % 26) as u8) as char))
            .collect::<String>()
            .to_uppercase();
        let person = p.id.clone();
        self.ds.persons.push(p);
        let meta = self.meta();
        self.ds.duties.push(Duty {
            id: self.rng.uuid(),
            meta,
            person,
            duty_at: unit.to_string(),
            role,
            signature: Some(signature),
            duty_percent: Some(100),
            start_date: self.term_start - Duration::days(365 * (1 + self.rng.below(10) as i64)),
            end_date: None,
            assignment_roles: Vec::new(),
        });
        self.ds.duties.len() - 1
    }

    fn guardian(&mut self, g: usize) -> String {
        let birth = date(
            self.term_start.year() - 30 - self.rng.below(20) as i32,
            1 + self.rng.below(12) as u32,
            1 + self.rng.below(28) as u32,
        );
        let sex = self.sex();
        let mut p = self.person(birth, sex);
        p.emails.push(Email {
            value: format!("{}.{}{}@post.example", ascii(&p.given_name), ascii(&p.family_name), g),
            email_type: EmailType::Private,
        });
        let id = p.id.clone();
        self.ds.persons.push(p);
        id
    }

    /// Classes of at most 25 per school year, each with a mentor group and teaching groups (with
    /// an activity naming their teacher), and fritidshem placements for the youngest.
    fn groups(&mut self, unit: &Unit, pupils: &[(usize, u8)], teachers: &[usize], fritids: &Unit) {
        let start = self.term_start;
        let end = Some(date(start.year() + 1, 6, 15));
        let mut by_year: Vec<Vec<usize>> = vec![Vec::new(); 10];
        for &(idx, year) in pupils {
            by_year[year as usize].push(idx);
        }
        let mut teacher_turn = 0usize;
        for (year, members) in by_year.iter().enumerate() {
            for (c, chunk) in members.chunks(25).enumerate() {
                let letter = (b'A' + (c % 26) as u8) as char;
                let class = match unit.kind {
                    UnitKind::Gymnasium => format!("NA{}{letter}", (start.year() + 1 - year as i32) % 100),
                    _ => format!("{year}{letter}"),
                };
                let school_type = self.ds.persons[chunk[0]].enrolments[0].school_type;
                let memberships: Vec<Membership> = chunk
                    .iter()
                    .map(|&i| Membership {
                        person: self.ds.persons[i].id.clone(),
                        start_date: Some(start),
                        end_date: None,
                    })
                    .collect();
                let add = |g: &mut Gen, name: String, group_type: GroupType| {
                    let meta = g.meta();
                    let id = g.rng.uuid();
                    g.ds.groups.push(Group {
                        id: id.clone(),
                        meta,
                        display_name: name,
                        group_type,
                        school_type: Some(school_type),
                        organisation: unit.id.clone(),
                        start_date: start,
                        end_date: end,
                        memberships: memberships.clone(),
                    });
                    id
                };
                add(self, class.clone(), GroupType::Class);
                let mentor = add(self, format!("Mentorsgrupp {class}"), GroupType::Mentor);
                let teaching: Vec<(String, String)> = SUBJECTS
                    .iter()
                    .map(|s| (add(self, format!("{class} {s}"), GroupType::Teaching), format!("{s} {class}")))
                    .collect();
                if teachers.is_empty() {
                    continue;
                }
                let mentor_duty = teachers[teacher_turn % teachers.len()];
                self.ds.duties[mentor_duty].assignment_roles.push(AssignmentRole {
                    group: mentor,
                    role_type: "Mentor".into(),
                    start_date: Some(start),
                    end_date: end,
                });
                for (group, name) in teaching {
                    let duty = teachers[teacher_turn % teachers.len()];
                    teacher_turn += 1;
                    let meta = self.meta();
                    let id = self.rng.uuid();
                    self.ds.activities.push(Activity {
                        id,
                        meta,
                        display_name: name,
                        organisation: unit.id.clone(),
                        groups: vec![group],
                        teachers: vec![Teacher {
                            duty: self.ds.duties[duty].id.clone(),
                            start_date: Some(start),
                            end_date: end,
                        }],
                        start_date: start,
                        end_date: end,
                    });
                }
            }
        }
        if unit.kind == UnitKind::Grundskola {
            for &(idx, year) in pupils {
                if year <= 3 {
                    let meta = self.meta();
                    let id = self.rng.uuid();
                    let p = &self.ds.persons[idx];
                    let owners = p.responsibles.iter().map(|r| r.person.clone()).collect();
                    let child = p.id.clone();
                    self.ds.placements.push(Placement {
                        id,
                        meta,
                        child,
                        placed_at: fritids.id.clone(),
                        owners,
                        school_type: SchoolType::Fth,
                        start_date: start,
                        end_date: end,
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn params(persons: usize, seed: u64) -> GenParams {
        GenParams { persons, seed, today: date(2026, 10, 1) }
    }

    #[test]
    fn the_same_seed_gives_the_same_data_and_another_seed_other_data() {
        let a = generate(&params(300, 42)).unwrap();
        let b = generate(&params(300, 42)).unwrap();
        assert_eq!(a.dataset, b.dataset);
        assert_eq!(a.specials, b.specials);
        let c = generate(&params(300, 43)).unwrap();
        assert_ne!(a.dataset.persons, c.dataset.persons);
        assert_eq!(generate(&params(10, 1)).unwrap_err(), GenerateError::TooFewPersons { asked: 10 });
    }

    #[test]
    fn the_data_has_every_role_and_every_special_person() {
        let g = generate(&params(1000, 7)).unwrap();
        let (d, sp) = (&g.dataset, &g.specials);
        let today = date(2026, 10, 1);
        assert_eq!(d.persons.len(), 1000);
        let by_id: HashMap<&str, &Person> = d.persons.iter().map(|p| (p.id.as_str(), p)).collect();
        assert_eq!(by_id.len(), 1000, "ids are unique");
        let with_duty: HashSet<&str> = d.duties.iter().map(|x| x.person.as_str()).collect();
        let pupils = d.persons.iter().filter(|p| !p.enrolments.is_empty()).count();
        let guardians: Vec<&Person> =
            d.persons.iter().filter(|p| p.enrolments.is_empty() && !with_duty.contains(p.id.as_str())).collect();
        assert_eq!((pupils, with_duty.len(), guardians.len()), (700, 100, 200));
        assert!(guardians.iter().all(|p| p.eppns.is_empty()), "guardians have no school identity");
        assert!(by_id[sp.guardian.as_str()].enrolments.is_empty());

        // Civic numbers: unique, valid, birth numbers 900-999, except the three special ones.
        let mut seen = HashSet::new();
        for p in &d.persons {
            let Some(c) = &p.civic_no else {
                assert_eq!(p.id, sp.no_civic_no);
                continue;
            };
            assert!(seen.insert(c.clone()), "civic numbers are unique");
            if p.id == sp.temporary_no {
                assert_eq!(&c[8..10], "TF");
                continue;
            }
            assert!(civic::is_valid(c), "{}: check digit", p.id);
            assert_eq!(&c[8..9], "9", "a test birth number (900-999)");
            let day: u32 = c[6..8].parse().unwrap();
            assert_eq!(day > 60, p.id == sp.coordination_no);
        }
        assert_eq!(d.persons.iter().filter(|p| p.civic_no.is_none()).count(), 1);

        let marking = |id: &str| by_id[id].security_marking;
        assert_eq!(marking(&sp.protected), SecurityMarking::Protected);
        assert!(by_id[sp.protected.as_str()].addresses.is_empty(), "no address for a protected person");
        assert_eq!(marking(&sp.confidential), SecurityMarking::Confidential);
        assert_eq!(d.persons.iter().filter(|p| p.security_marking == SecurityMarking::Protected).count(), 1);
        assert_eq!(by_id[sp.deceased.as_str()].status, PersonStatus::Deceased);
        assert_eq!(by_id[sp.emigrated.as_str()].status, PersonStatus::Emigrated);
        assert_eq!(by_id[sp.double_names.as_str()].family_name, "Lindström-Åberg");
        assert!(d.persons.iter().any(|p| p.given_name.contains(['å', 'ä', 'ö', 'Å', 'Ä', 'Ö'])));

        let former = by_id[sp.former_pupil.as_str()];
        assert!(former.enrolments.iter().all(|e| e.end_date.is_some_and(|e| e < today)));
        assert!(!d.groups.iter().any(|g| g.memberships.iter().any(|m| m.person == former.id)));

        let units: HashSet<&str> =
            d.duties.iter().filter(|x| x.person == sp.two_unit_teacher).map(|x| x.duty_at.as_str()).collect();
        assert_eq!(units.len(), 2, "a teacher at two school units");
        let mut duties_per_person: HashMap<&str, usize> = HashMap::new();
        for x in &d.duties {
            *duties_per_person.entry(x.person.as_str()).or_default() += 1;
        }
        assert!(duties_per_person.values().filter(|&&n| n == 2).count() >= 3, "and a few more");

        // Every current pupil is in exactly one class; classes hold at most 25.
        let mut classes: HashMap<&str, usize> = HashMap::new();
        for g in d.groups.iter().filter(|g| g.group_type == GroupType::Class) {
            assert!(g.memberships.len() <= 25);
            for m in &g.memberships {
                *classes.entry(m.person.as_str()).or_default() += 1;
            }
        }
        assert_eq!(classes.len(), pupils - 1);
        assert!(classes.values().all(|&n| n == 1));
        // Every teaching group has an activity whose teacher is a teacher's duty.
        let teaching: Vec<&Group> = d.groups.iter().filter(|g| g.group_type == GroupType::Teaching).collect();
        assert!(!teaching.is_empty());
        for g in teaching {
            let a = d.activities.iter().find(|a| a.groups.contains(&g.id)).expect("an activity");
            let duty = d.duties.iter().find(|x| x.id == a.teachers[0].duty).expect("the duty");
            assert_eq!(duty.role, DutyRole::Teacher);
        }
        assert!(d.groups.iter().any(|g| g.group_type == GroupType::Mentor));
        assert!(d.duties.iter().any(|x| x.assignment_roles.iter().any(|a| a.role_type == "Mentor")));
        assert!(d.placements.iter().all(|p| p.school_type == SchoolType::Fth));
        assert!(!d.placements.is_empty());
        let kinds: HashSet<_> = d.organisations.iter().map(|o| o.org_type).collect();
        assert_eq!(kinds.len(), 3);
        assert!(d.persons.iter().any(|p| p.external_identifiers.iter().any(|x| !x.globally_unique)));
    }
}
