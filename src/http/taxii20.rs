//! The read-only TAXII 2.0 view under `/taxii20/` (see `service::taxii20`): its routes, its media
//! types, `Range` / `Content-Range` paging, and errors as TAXII 2.0 error resources.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};

use super::error::HttpError;
use super::{authenticated_only, begin, both, header_str, note, raw_query, seg, PublicBase, Svc};
use crate::model::access::Principal;
use crate::model::time::format_taxii;
use crate::service::taxii20::{parse_query20, parse_range, Answer20, Listing20, STIX20, TAXII20};
use crate::service::Service;

/// An error of the TAXII 2.0 view: the TAXII error resource, as the 2.0 media type.
#[derive(Debug)]
pub struct Error20(HttpError);

impl std::fmt::Display for Error20 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl<E: Into<HttpError>> From<E> for Error20 {
    fn from(e: E) -> Self {
        Error20(e.into())
    }
}

impl ResponseError for Error20 {
    fn status_code(&self) -> StatusCode {
        self.0.status_code()
    }

    fn error_response(&self) -> HttpResponse {
        let mut r = self.0.error_response();
        r.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static(TAXII20));
        r
    }
}

type Result20 = Result<HttpResponse, Error20>;

fn not_allowed(allow: &'static str) -> actix_web::Route {
    web::route().to(move || async move { Err::<HttpResponse, Error20>(Error20(HttpError::MethodNotAllowed(allow))) })
}

/// Registers the TAXII 2.0 routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    let c = "/taxii20/{root}/collections/{collection}";
    cfg.service(web::resource(both("/taxii20/")).route(web::get().to(discovery)).default_service(not_allowed("GET")))
        .service(
            web::resource(both("/taxii20/{root}/")).route(web::get().to(api_root)).default_service(not_allowed("GET")),
        )
        .service(
            web::resource(both("/taxii20/{root}/collections/"))
                .route(web::get().to(collections))
                .default_service(not_allowed("GET")),
        )
        .service(
            web::resource(both(&format!("{c}/"))).route(web::get().to(collection)).default_service(not_allowed("GET")),
        )
        .service(
            web::resource(both(&format!("{c}/manifest/")))
                .route(web::get().to(manifest))
                .default_service(not_allowed("GET")),
        )
        .service(
            web::resource(both(&format!("{c}/objects/")))
                .route(web::get().to(objects))
                .route(web::post().to(add_objects))
                .default_service(not_allowed("GET, POST")),
        )
        .service(
            web::resource(both(&format!("{c}/objects/{{object}}/")))
                .route(web::get().to(object))
                .default_service(not_allowed("GET")),
        )
        // Anything else under /taxii20/: a TAXII 2.0 error, not the 2.1 routes' answer.
        .service(
            web::resource("/taxii20/{rest:.*}")
                .to(|| async { Err::<HttpResponse, Error20>(Error20(HttpError::NoRoute)) }),
        );
}

async fn caller20(req: &HttpRequest, svc: &Service, stix: bool) -> Result<Principal, Error20> {
    let caller = authenticated_only(req, svc).await?;
    if !super::media::accepts_taxii20(header_str(req, header::ACCEPT), stix) {
        return Err(Error20(HttpError::NotAcceptable20));
    }
    Ok(caller.principal)
}

fn json20<T: serde::Serialize>(value: &T) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, TAXII20))
        .body(serde_json::to_vec(value).unwrap_or_default())
}

async fn discovery(req: HttpRequest, svc: Svc, base: web::Data<PublicBase>) -> Result20 {
    begin(&req, "discovery_taxii20");
    let who = caller20(&req, &svc, false).await?;
    Ok(json20(&svc.discovery20(&who, &base.for_request(&req))))
}

async fn api_root(req: HttpRequest, svc: Svc) -> Result20 {
    begin(&req, "get_api_root_taxii20");
    let who = caller20(&req, &svc, false).await?;
    Ok(json20(&svc.api_root20(&who, seg(&req, "root"))?))
}

async fn collections(req: HttpRequest, svc: Svc) -> Result20 {
    begin(&req, "get_collections_taxii20");
    let who = caller20(&req, &svc, false).await?;
    Ok(json20(&svc.collections20(&who, seg(&req, "root"))?))
}

async fn collection(req: HttpRequest, svc: Svc) -> Result20 {
    begin(&req, "get_collection_taxii20");
    let who = caller20(&req, &svc, false).await?;
    Ok(json20(&svc.get_collection20(&who, seg(&req, "root"), seg(&req, "collection"))?))
}

async fn add_objects(req: HttpRequest, svc: Svc) -> Result20 {
    begin(&req, "add_objects_taxii20");
    let who = caller20(&req, &svc, false).await?;
    Err(Error20(HttpError::Service(svc.refuse_write20(&who, seg(&req, "root"), seg(&req, "collection")))))
}

async fn manifest(req: HttpRequest, svc: Svc) -> Result20 {
    list(req, svc, Listing20::Manifest, "get_manifest_taxii20").await
}

async fn objects(req: HttpRequest, svc: Svc) -> Result20 {
    list(req, svc, Listing20::Objects, "get_objects_taxii20").await
}

async fn object(req: HttpRequest, svc: Svc) -> Result20 {
    list(req, svc, Listing20::Object, "get_object_taxii20").await
}

async fn list(req: HttpRequest, svc: Svc, listing: Listing20, action: &'static str) -> Result20 {
    begin(&req, action);
    let who = caller20(&req, &svc, listing != Listing20::Manifest).await?;
    note(&req, |n| n.filters = raw_query(&req));
    let query = parse_query20(req.query_string(), listing).map_err(|e| HttpError::Service(e.into()))?;
    let range = match (listing, header_str(&req, header::RANGE)) {
        (Listing20::Object, _) | (_, None) => None,
        (_, Some(r)) => Some(parse_range(r).map_err(HttpError::BadRequest)?),
    };
    let object = (listing == Listing20::Object).then(|| seg(&req, "object"));
    let answer = svc.list20(&who, listing, seg(&req, "root"), seg(&req, "collection"), object, query, range).await?;
    match answer {
        Answer20::Unsatisfiable { total } => Ok(HttpResponse::build(StatusCode::RANGE_NOT_SATISFIABLE)
            .insert_header((header::CONTENT_TYPE, TAXII20))
            .insert_header((header::CONTENT_RANGE, format!("items */{total}")))
            .body(
                serde_json::to_vec(&serde_json::json!({
                    "title": "Range Not Satisfiable",
                    "description": format!("the range starts beyond the {total} items that match; ask for items=0-{}", total.max(1) - 1),
                    "http_status": "416",
                }))
                .unwrap_or_default(),
            )),
        Answer20::Page { body, content_range, partial, page } => {
            let mut r = HttpResponse::build(if partial { StatusCode::PARTIAL_CONTENT } else { StatusCode::OK });
            r.insert_header((header::CONTENT_TYPE, if listing == Listing20::Manifest { TAXII20 } else { STIX20 }));
            r.insert_header(("Accept-Ranges", "items"));
            if let Some(cr) = content_range {
                r.insert_header((header::CONTENT_RANGE, cr));
            }
            if let (Some(first), Some(last)) = (page.first, page.last) {
                r.insert_header(("X-TAXII-Date-Added-First", format_taxii(first)));
                r.insert_header(("X-TAXII-Date-Added-Last", format_taxii(last)));
            }
            note(&req, |n| n.page = Some(*page));
            Ok(r.body(body))
        }
    }
}
