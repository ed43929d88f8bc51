#!/usr/bin/env python3
"""Harvests the gateway's DCAT-AP catalogue the way a portal would, with
rdflib (a real RDF library): for each serialisation (JSON-LD, Turtle,
RDF/XML) it walks the Hydra pages from the first, parses each one, and
checks with SPARQL that every mandatory DCAT-AP 2.1 property is there, that
the pages list every public dataset exactly once, and that no restricted
dataset and no download URL of closed data leaks.

    python3 tests/clients/dcat_rdflib.py http://127.0.0.1:PORT
"""

import json
import sys
import urllib.request

import rdflib

BASE = sys.argv[1].rstrip("/")
FORMATS = {"jsonld": "json-ld", "turtle": "turtle", "rdfxml": "xml"}
PREFIXES = """
PREFIX dcat: <http://www.w3.org/ns/dcat#>
PREFIX dct: <http://purl.org/dc/terms/>
PREFIX foaf: <http://xmlns.com/foaf/0.1/>
PREFIX vcard: <http://www.w3.org/2006/vcard/ns#>
PREFIX hydra: <http://www.w3.org/ns/hydra/core#>
"""
PUBLIC = "http://publications.europa.eu/resource/authority/access-right/PUBLIC"


def get(url, accept=None):
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, response.headers.get("Content-Type"), response.read()


def ask(graph, query):
    return bool(graph.query(PREFIXES + query).askAnswer)


def rows(graph, query):
    return [tuple(str(value) if value is not None else None for value in row)
            for row in graph.query(PREFIXES + query)]


def fail(message):
    print("FAIL:", message)
    sys.exit(1)


def check_page(graph, url):
    # The catalogue: title, description, publisher (a named foaf:Agent).
    if not ask(graph, """ASK { ?c a dcat:Catalog ; dct:title ?t ; dct:description ?d ;
                                 dct:publisher ?p . ?p a foaf:Agent ; foaf:name ?n }"""):
        fail(f"{url}: catalogue lacks a mandatory property")
    missing = rows(graph, """
        SELECT ?d WHERE { ?d a dcat:Dataset .
          FILTER NOT EXISTS { ?d dct:title ?t ; dct:description ?x ; dct:identifier ?i ;
                                 dct:publisher ?p ; dcat:contactPoint ?c ; dct:accessRights ?r ;
                                 dcat:distribution ?dist .
                              ?p a foaf:Agent ; foaf:name ?name .
                              ?c vcard:fn ?fn } }""")
    if missing:
        fail(f"{url}: datasets lacking a mandatory or declared property: {missing}")
    if rows(graph, "SELECT ?dist WHERE { ?dist a dcat:Distribution FILTER NOT EXISTS { ?dist dcat:accessURL ?u } }"):
        fail(f"{url}: a distribution has no accessURL")
    catalogued = rows(graph, "SELECT ?d WHERE { ?c a dcat:Catalog ; dcat:dataset ?d }")
    typed = rows(graph, "SELECT ?d WHERE { ?d a dcat:Dataset }")
    if sorted(catalogued) != sorted(typed):
        fail(f"{url}: catalogue and datasets disagree")
    # Closed data: no download URL anywhere.
    leaks = rows(graph, f"""
        SELECT ?d ?u WHERE {{ ?d dcat:distribution ?dist . ?dist dcat:downloadURL ?u .
                              FILTER NOT EXISTS {{ ?d dct:accessRights <{PUBLIC}> }} }}""")
    if leaks:
        fail(f"{url}: download URLs of closed data: {leaks}")
    opened = rows(graph, f"SELECT ?d WHERE {{ ?d dct:accessRights <{PUBLIC}> FILTER NOT EXISTS {{ ?d dcat:distribution/dcat:downloadURL ?u }} }}")
    if opened:
        fail(f"{url}: open datasets without a download URL: {opened}")


def harvest(name, rdflib_format):
    url = f"{BASE}/api/v1/catalog/dcat?format={name}&page_size=3"
    seen = []
    download_urls = []
    total = None
    pages = 0
    while url:
        status, content_type, body = get(url)
        if status != 200:
            fail(f"{url}: status {status}")
        graph = rdflib.Graph()
        graph.parse(data=body, format=rdflib_format, publicID=url)
        check_page(graph, url)
        pages += 1
        for (identifier,) in rows(graph, "SELECT ?i WHERE { ?d a dcat:Dataset ; dct:identifier ?i }"):
            seen.append(identifier)
        download_urls += [u for (u,) in rows(graph, "SELECT ?u WHERE { ?x dcat:downloadURL ?u }")]
        view = rows(graph, "SELECT ?total ?next WHERE { ?v a hydra:PartialCollectionView ; hydra:totalItems ?total OPTIONAL { ?v hydra:next ?next } }")
        if len(view) != 1:
            fail(f"{url}: expected one hydra:PartialCollectionView, got {view}")
        total = int(view[0][0])
        url = view[0][1]
        if pages > 100:
            fail("paging does not end")
    if len(seen) != len(set(seen)):
        fail(f"{name}: a dataset appears twice: {seen}")
    if len(seen) != total:
        fail(f"{name}: {len(seen)} datasets walked, totalItems says {total}")
    return sorted(seen), pages, sorted(set(download_urls))


def main():
    status, _, body = get(f"{BASE}/api/v1/datasets?page_size=100")
    visible = json.loads(body)["datasets"]
    expected = sorted(d["id"] for d in visible if d["metadata_visibility"] == "public")
    results = {}
    for name, rdflib_format in FORMATS.items():
        results[name] = harvest(name, rdflib_format)
        ids, pages, _ = results[name]
        if ids != expected:
            fail(f"{name}: listed {ids}, expected the public catalogue {expected}")
        if pages < 2:
            fail(f"{name}: page_size=3 should give several pages")
    if len({tuple(result[0]) for result in results.values()}) != 1:
        fail("the three serialisations list different datasets")
    # Every download URL works anonymously: it is really open data.
    for url in results["turtle"][2]:
        status, _, _ = get(url)
        if status != 200:
            fail(f"download URL {url}: status {status}")
    # Content negotiation by Accept.
    for accept, rdflib_format in [("text/turtle", "turtle"), ("application/rdf+xml", "xml"),
                                  ("application/ld+json", "json-ld")]:
        status, content_type, body = get(f"{BASE}/api/v1/catalog/dcat", accept)
        if not content_type.startswith(accept):
            fail(f"Accept {accept}: got {content_type}")
        rdflib.Graph().parse(data=body, format=rdflib_format)
    print(f"ok: {len(expected)} datasets, {len(results['turtle'][2])} download URLs, three serialisations")


if __name__ == "__main__":
    main()
