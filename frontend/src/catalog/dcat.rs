//! `GET /catalog.ttl`: the catalog as DCAT-AP-NO, in Turtle, written with `oxrdf` terms and
//! the `oxttl` serializer (no string building of RDF).
//!
//! The `dcat:Catalog` (`<public_base_url>/catalog`) has `dct:title` and `dct:description`
//! (`@nb`), `dct:publisher` and `dcat:contactPoint` from `[catalog]` of the configuration,
//! and a `dcat:service` per API. Each published or deprecated API is a `dcat:DataService`
//! (`<public_base_url>/api/v1/catalog/<id>`) with `dct:title`@nb, `dct:description`@nb (when
//! it has one), `dct:identifier`, `dcat:endpointURL` (its base URL),
//! `dcat:endpointDescription` (its spec URL; without one, its entry in this frontend's REST
//! API, which describes it), `dct:publisher` (the owner's organisation number as a
//! Brønnøysund register URI, [`PUBLISHER_URI_PREFIX`]) and `dcat:contactPoint` (a
//! `vcard:Organization` with `vcard:fn` and `vcard:hasEmail`). Catalog entries carry no
//! contact e-mail (the replicated record has none), so the contact point is the owner's from
//! `catalog.owner_contacts`, else the catalog's own `catalog.contact`.
//!
//! [`check_export`] parses an export back with `oxttl` and checks that the catalog and every
//! data service have each of those properties (used by the tests).

use std::collections::{BTreeSet, HashMap};

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use oxrdf::vocab::rdf;
use oxrdf::{BlankNode, Literal, NamedNode, NamedOrBlankNode, Term, Triple};
use oxttl::{TurtleParser, TurtleSerializer};

use super::{ApiEntry, published, rest::entry_path};
use crate::AppState;
use crate::config::{CatalogSettings, ContactSettings};
use crate::problem::HttpError;

/// Media type of the export.
pub const TURTLE: &str = "text/turtle; charset=utf-8";
/// Publisher URIs: this plus the organisation number (the Central Coordinating Register for
/// Legal Entities, as DCAT-AP-NO names publishers).
pub const PUBLISHER_URI_PREFIX: &str = "https://data.brreg.no/enhetsregisteret/api/enheter/";

const DCAT: &str = "http://www.w3.org/ns/dcat#";
const DCT: &str = "http://purl.org/dc/terms/";
const VCARD: &str = "http://www.w3.org/2006/vcard/ns#";
const FOAF: &str = "http://xmlns.com/foaf/0.1/";

/// The properties every `dcat:DataService` of the export has.
pub const SERVICE_PROPERTIES: [&str; 6] = [
    "http://purl.org/dc/terms/title",
    "http://www.w3.org/ns/dcat#endpointURL",
    "http://purl.org/dc/terms/identifier",
    "http://www.w3.org/ns/dcat#contactPoint",
    "http://purl.org/dc/terms/publisher",
    "http://www.w3.org/ns/dcat#endpointDescription",
];
/// The properties the `dcat:Catalog` has.
pub const CATALOG_PROPERTIES: [&str; 4] = [
    "http://purl.org/dc/terms/title",
    "http://purl.org/dc/terms/description",
    "http://purl.org/dc/terms/publisher",
    "http://www.w3.org/ns/dcat#contactPoint",
];

fn iri(base: &str, local: &str) -> Result<NamedNode, HttpError> {
    NamedNode::new(format!("{base}{local}"))
        .map_err(|e| HttpError::Internal(format!("IRI {base}{local}: {e}")))
}

/// `s` as one IRI path segment (catalog ids may hold `:` and `/`).
fn segment(s: &str) -> String {
    s.replace('%', "%25")
        .replace('/', "%2F")
        .replace(':', "%3A")
}

struct Graph {
    triples: Vec<Triple>,
}

impl Graph {
    fn add(&mut self, s: impl Into<NamedOrBlankNode>, p: NamedNode, o: impl Into<Term>) {
        self.triples.push(Triple::new(s, p, o));
    }

    fn nb(&mut self, s: &NamedNode, p: NamedNode, text: &str) -> Result<(), HttpError> {
        let literal = Literal::new_language_tagged_literal(text, "nb")
            .map_err(|e| HttpError::Internal(format!("literal: {e}")))?;
        self.add(s.clone(), p, literal);
        Ok(())
    }

    /// A `vcard:Organization` contact point of `s`.
    fn contact(&mut self, s: &NamedNode, c: &ContactSettings) -> Result<(), HttpError> {
        let card = BlankNode::default();
        self.add(s.clone(), iri(DCAT, "contactPoint")?, card.clone());
        self.add(
            card.clone(),
            rdf::TYPE.into_owned(),
            iri(VCARD, "Organization")?,
        );
        self.add(
            card.clone(),
            iri(VCARD, "fn")?,
            Literal::new_simple_literal(&c.name),
        );
        self.add(card, iri(VCARD, "hasEmail")?, iri("mailto:", &c.email)?);
        Ok(())
    }

    /// `s dct:publisher <brreg/org>` and the publisher as a `foaf:Agent`.
    fn publisher(
        &mut self,
        s: &NamedNode,
        org: &str,
        seen: &mut BTreeSet<String>,
    ) -> Result<(), HttpError> {
        let agent = iri(PUBLISHER_URI_PREFIX, &segment(org))?;
        self.add(s.clone(), iri(DCT, "publisher")?, agent.clone());
        if seen.insert(org.to_owned()) {
            self.add(agent.clone(), rdf::TYPE.into_owned(), iri(FOAF, "Agent")?);
            self.add(
                agent,
                iri(DCT, "identifier")?,
                Literal::new_simple_literal(org),
            );
        }
        Ok(())
    }
}

/// The triples of the data service `e`, listed in the catalog `root`.
fn service(
    g: &mut Graph,
    root: &NamedNode,
    catalog: &CatalogSettings,
    base: &str,
    e: &ApiEntry,
    publishers: &mut BTreeSet<String>,
) -> Result<(), HttpError> {
    let service = iri(base, &entry_path(&segment(&e.id)))?;
    g.add(root.clone(), iri(DCAT, "service")?, service.clone());
    g.add(
        service.clone(),
        rdf::TYPE.into_owned(),
        iri(DCAT, "DataService")?,
    );
    g.nb(&service, iri(DCT, "title")?, &e.title)?;
    if !e.description.is_empty() {
        g.nb(&service, iri(DCT, "description")?, &e.description)?;
    }
    g.add(
        service.clone(),
        iri(DCT, "identifier")?,
        Literal::new_simple_literal(&e.id),
    );
    g.add(
        service.clone(),
        iri(DCAT, "endpointURL")?,
        iri("", &e.base_url)?,
    );
    let description = match &e.spec_url {
        Some(spec) => iri("", spec)?,
        None => service.clone(),
    };
    g.add(
        service.clone(),
        iri(DCAT, "endpointDescription")?,
        description,
    );
    g.publisher(&service, &e.owner, publishers)?;
    g.contact(&service, catalog.contact_of(&e.owner))
}

/// The export of `entries` as Turtle, for a frontend at `base` (its `public_base_url`).
pub fn turtle(
    catalog: &CatalogSettings,
    base: &str,
    entries: &[ApiEntry],
) -> Result<Vec<u8>, HttpError> {
    let mut g = Graph {
        triples: Vec::new(),
    };
    let mut publishers = BTreeSet::new();
    let root = iri(base, "/catalog")?;
    g.add(root.clone(), rdf::TYPE.into_owned(), iri(DCAT, "Catalog")?);
    g.nb(&root, iri(DCT, "title")?, &catalog.title)?;
    g.nb(&root, iri(DCT, "description")?, &catalog.description)?;
    g.publisher(&root, &catalog.publisher_org, &mut publishers)?;
    g.contact(&root, &catalog.contact)?;
    for e in entries {
        // An entry whose URLs are not IRIs is left out (and logged), not the whole export.
        let mut one = Graph {
            triples: Vec::new(),
        };
        match service(&mut one, &root, catalog, base, e, &mut publishers) {
            Ok(()) => g.triples.append(&mut one.triples),
            Err(err) => {
                tracing::warn!(id = %e.id, error = %err, "catalog entry left out of the DCAT export")
            }
        }
    }
    // One block per subject (the serializer groups consecutive triples of a subject): the
    // catalog first, then in the order of the subjects' text; a stable sort keeps each
    // subject's triples in the order written.
    let root_subject = NamedOrBlankNode::from(root);
    g.triples
        .sort_by_cached_key(|t| (t.subject != root_subject, t.subject.to_string()));
    let ser = |e: std::io::Error| HttpError::Internal(format!("writing Turtle: {e}"));
    let mut out = TurtleSerializer::new();
    for (prefix, ns) in [
        ("dcat", DCAT),
        ("dct", DCT),
        ("vcard", VCARD),
        ("foaf", FOAF),
    ] {
        out = out
            .with_prefix(prefix, ns)
            .map_err(|e| HttpError::Internal(format!("prefix {prefix}: {e}")))?;
    }
    let mut writer = out.for_writer(Vec::new());
    for t in &g.triples {
        writer.serialize_triple(t).map_err(ser)?;
    }
    writer.finish().map_err(ser)
}

/// `GET /catalog.ttl`.
#[utoipa::path(
    get,
    path = "/catalog.ttl",
    tag = "catalog",
    responses(
        (status = 200, description = "The catalog as DCAT-AP-NO (Turtle)", content_type = "text/turtle"),
        (status = 503, description = "The cluster is unavailable", body = crate::problem::Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn export(State(s): State<AppState>) -> Result<Response, HttpError> {
    let entries = published(&s).await?;
    let body = turtle(&s.config.catalog, &s.config.public_base_url, &entries)?;
    let mut response = body.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(TURTLE));
    Ok(response)
}

/// What [`check_export`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportSummary {
    /// `dct:identifier` of every `dcat:DataService`, sorted.
    pub services: Vec<String>,
}

/// Parses `turtle` (with `oxttl`) and checks that there is one `dcat:Catalog` with every
/// [`CATALOG_PROPERTIES`], that every `dcat:DataService` has every [`SERVICE_PROPERTIES`]
/// (`dct:title` in `nb`), and that every contact point has `vcard:fn` and a `mailto:`
/// `vcard:hasEmail`. Names the first thing missing.
pub fn check_export(turtle: &[u8]) -> Result<ExportSummary, String> {
    let mut props: HashMap<NamedOrBlankNode, Vec<(String, Term)>> = HashMap::new();
    for triple in TurtleParser::new().for_slice(turtle) {
        let t = triple.map_err(|e| format!("not Turtle: {e}"))?;
        props
            .entry(t.subject)
            .or_default()
            .push((t.predicate.as_str().to_owned(), t.object));
    }
    let of_type = |class: &str| -> Vec<&NamedOrBlankNode> {
        props
            .iter()
            .filter(|(_, p)| {
                p.iter().any(|(k, v)| {
                    k == rdf::TYPE.as_str()
                        && matches!(v, Term::NamedNode(n) if n.as_str() == format!("{DCAT}{class}"))
                })
            })
            .map(|(s, _)| s)
            .collect()
    };
    let objects = |s: &NamedOrBlankNode, p: &str| -> Vec<Term> {
        props
            .get(s)
            .map(|ps| {
                ps.iter()
                    .filter(|(k, _)| k == p)
                    .map(|(_, v)| v.clone())
                    .collect()
            })
            .unwrap_or_default()
    };
    let check_contacts = |s: &NamedOrBlankNode| -> Result<(), String> {
        for card in objects(s, &format!("{DCAT}contactPoint")) {
            let card = match card {
                Term::BlankNode(b) => NamedOrBlankNode::BlankNode(b),
                Term::NamedNode(n) => NamedOrBlankNode::NamedNode(n),
                _ => return Err(format!("{s}: contact point is a literal")),
            };
            if objects(&card, &format!("{VCARD}fn")).is_empty() {
                return Err(format!("{s}: contact point without vcard:fn"));
            }
            let emails = objects(&card, &format!("{VCARD}hasEmail"));
            if !emails
                .iter()
                .any(|e| matches!(e, Term::NamedNode(n) if n.as_str().starts_with("mailto:")))
            {
                return Err(format!(
                    "{s}: contact point without a mailto: vcard:hasEmail"
                ));
            }
        }
        Ok(())
    };
    let catalogs = of_type("Catalog");
    let [catalog] = catalogs.as_slice() else {
        return Err(format!("{} dcat:Catalog, not one", catalogs.len()));
    };
    for p in CATALOG_PROPERTIES {
        if objects(catalog, p).is_empty() {
            return Err(format!("the dcat:Catalog has no {p}"));
        }
    }
    check_contacts(catalog)?;
    let mut services = Vec::new();
    for s in of_type("DataService") {
        for p in SERVICE_PROPERTIES {
            if objects(s, p).is_empty() {
                return Err(format!("dcat:DataService {s} has no {p}"));
            }
        }
        let nb_title = objects(s, &format!("{DCT}title"))
            .iter()
            .any(|t| matches!(t, Term::Literal(l) if l.language() == Some("nb")));
        if !nb_title {
            return Err(format!("dcat:DataService {s} has no dct:title in nb"));
        }
        check_contacts(s)?;
        for id in objects(s, &format!("{DCT}identifier")) {
            if let Term::Literal(l) = id {
                services.push(l.value().to_owned());
            }
        }
    }
    services.sort();
    Ok(ExportSummary { services })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::OwnerContactSettings;

    fn entry(id: &str, spec: Option<&str>) -> ApiEntry {
        ApiEntry {
            spec_url: spec.map(str::to_owned),
            ..crate::catalog::sample_entry(id)
        }
    }

    #[test]
    fn the_export_parses_and_has_every_mandatory_property() {
        let mut catalog = CatalogSettings::default();
        catalog.owner_contacts.push(OwnerContactSettings {
            org: "974760673".into(),
            contact: ContactSettings {
                name: "RF-teamet".into(),
                email: "rf@nhn.example".into(),
            },
        });
        let entries = [
            entry("nhn.rf", Some("https://rf.example/openapi.json")),
            entry("odd:id/with", None),
        ];
        let ttl = turtle(&catalog, "http://127.0.0.1:8080", &entries).unwrap();
        let text = String::from_utf8(ttl.clone()).unwrap();
        assert!(text.contains("@prefix dcat:"), "{text}");
        assert!(text.contains("rf@nhn.example"), "{text}");
        assert!(
            text.contains("https://data.brreg.no/enhetsregisteret/api/enheter/974760673"),
            "{text}"
        );
        let summary = check_export(&ttl).unwrap();
        assert_eq!(summary.services, vec!["nhn.rf", "odd:id/with"]);
    }

    #[test]
    fn the_check_names_what_is_missing() {
        let ttl = b"@prefix dcat: <http://www.w3.org/ns/dcat#> .\n\
            @prefix dct: <http://purl.org/dc/terms/> .\n\
            <http://x/c> a dcat:Catalog ; dct:title \"K\"@nb ; dct:description \"D\"@nb ;\n\
              dct:publisher <http://x/p> ; dcat:contactPoint [ <http://www.w3.org/2006/vcard/ns#fn> \"n\" ;\n\
              <http://www.w3.org/2006/vcard/ns#hasEmail> <mailto:a@b.no> ] .\n\
            <http://x/s> a dcat:DataService ; dct:title \"T\"@nb .\n";
        let err = check_export(ttl).unwrap_err();
        assert!(err.contains("endpointURL"), "{err}");
        assert!(check_export(b"this is not turtle").is_err());
    }
}
