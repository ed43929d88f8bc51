#!/usr/bin/env python3
"""Generates the data files of the demo catalogue.

Every value is synthetic: names, plates, addresses and figures are drawn
from a seeded generator (Python standard library only), so running this
script again gives byte-identical files. Definitions (*.yaml, *.toml) are
written by hand; this script writes only the data files they point to.

    python3 catalog/generate.py        # from the repository root
"""

import csv
import datetime
import json
import os
import random

HERE = os.path.dirname(os.path.abspath(__file__))

# Communes of Troyes Champagne Metropole and an approximate centre for each.
COMMUNES = {
    "Troyes": (48.2973, 4.0744),
    "Sainte-Savine": (48.2960, 4.0230),
    "La Chapelle-Saint-Luc": (48.3130, 4.0450),
    "Saint-André-les-Vergers": (48.2800, 4.0530),
    "Romilly-sur-Seine": (48.5160, 3.7260),
}


def path(name):
    return os.path.join(HERE, name)


def jitter(rng, centre, spread=0.012):
    lat, lon = centre
    return (round(lat + rng.uniform(-spread, spread), 5),
            round(lon + rng.uniform(-spread, spread), 5))


def comma(number, decimals):
    """A number written the French way, with a decimal comma."""
    return f"{number:.{decimals}f}".replace(".", ",")


def write_csv(name, header, rows, encoding="utf-8", delimiter=",", lineterminator="\n"):
    with open(path(name), "w", encoding=encoding, newline="") as file:
        writer = csv.writer(file, delimiter=delimiter, lineterminator=lineterminator)
        writer.writerow(header)
        writer.writerows(rows)


def consommations_energie_batiments():
    """Windows-1252, `;`, decimal comma, CRLF: a spreadsheet export."""
    rng = random.Random(101)
    buildings = [
        ("Hôtel de Ville", "Troyes"), ("Médiathèque Jacques-Chirac", "Troyes"),
        ("Gymnase des Chartreux", "Troyes"), ("École élémentaire Jules-Ferry", "Troyes"),
        ("Piscine des Chartreux", "Troyes"), ("Théâtre de la Madeleine", "Troyes"),
        ("Centre technique municipal", "Troyes"),
        ("Mairie", "Sainte-Savine"), ("Salle des fêtes", "Sainte-Savine"),
        ("École maternelle Lamartine", "Sainte-Savine"),
        ("Mairie", "La Chapelle-Saint-Luc"), ("Complexe sportif Lucien-Pinet", "La Chapelle-Saint-Luc"),
        ("Maison de quartier", "La Chapelle-Saint-Luc"),
        ("Mairie", "Saint-André-les-Vergers"), ("Espace Gérard-Philipe", "Saint-André-les-Vergers"),
        ("Groupe scolaire Pierre-Brossolette", "Saint-André-les-Vergers"),
        ("Hôtel de Ville", "Romilly-sur-Seine"), ("Médiathèque", "Romilly-sur-Seine"),
        ("Stade nautique", "Romilly-sur-Seine"), ("Gymnase Paul-Bert", "Romilly-sur-Seine"),
    ]
    rows = []
    for building, commune in buildings:
        latitude, longitude = jitter(rng, COMMUNES[commune])
        surface = rng.randrange(400, 6000, 10)
        energies = ["électricité"] + rng.sample(["gaz naturel", "réseau de chaleur", "fioul"], rng.randint(1, 2))
        for energie in energies:
            intensity = {"électricité": 60, "gaz naturel": 110, "réseau de chaleur": 95, "fioul": 120}[energie]
            for annee in range(2019, 2024):
                conso = surface * intensity * rng.uniform(0.7, 1.25) * (1 - 0.03 * (annee - 2019))
                # A few meters were not read that year: the cell is left empty.
                reading = "" if rng.random() < 0.04 else comma(conso, 1)
                rows.append([len(rows) + 1, building, commune, annee, energie, reading, surface,
                             comma(latitude, 5), comma(longitude, 5)])
    write_csv("consommations-energie-batiments.csv",
              ["id", "batiment", "commune", "annee", "energie", "conso_kwh", "surface_m2", "latitude", "longitude"],
              rows, encoding="cp1252", delimiter=";", lineterminator="\r\n")


def releves_piezometriques():
    """GeoJSON points, one feature per station and week."""
    rng = random.Random(102)
    stations = [
        ("PZ-01 Pont-Hubert", "Troyes"), ("PZ-02 Chartreux", "Troyes"),
        ("PZ-03 Baltet", "Sainte-Savine"), ("PZ-04 Fontaine", "La Chapelle-Saint-Luc"),
        ("PZ-05 Vergers", "Saint-André-les-Vergers"), ("PZ-06 Seine aval", "Romilly-sur-Seine"),
        ("PZ-07 Seine amont", "Romilly-sur-Seine"), ("PZ-08 Barberey", "Troyes"),
    ]
    start = datetime.date(2024, 1, 1)
    features = []
    for station, commune in stations:
        latitude, longitude = jitter(rng, COMMUNES[commune], 0.02)
        level = rng.uniform(2.0, 6.0)
        for week in range(30):
            level = max(0.3, level + rng.uniform(-0.35, 0.3))
            features.append({
                "type": "Feature",
                "properties": {
                    "station": station,
                    "commune": commune,
                    "date_mesure": (start + datetime.timedelta(weeks=week)).isoformat(),
                    "niveau_m": round(level, 2),
                    "alerte": level < 1.0,
                },
                "geometry": {"type": "Point", "coordinates": [longitude, latitude]},
            })
    with open(path("releves-piezometriques.geojson"), "w", encoding="utf-8", newline="\n") as file:
        file.write('{"type": "FeatureCollection", "features": [\n')
        file.write(",\n".join(json.dumps(feature, ensure_ascii=False) for feature in features))
        file.write("\n]}\n")


def frequentation_musees():
    """UTF-8 with BOM, `,`: read without a declared schema."""
    rng = random.Random(103)
    museums = [
        ("Musée d'Art moderne", 3200), ("Musée Saint-Loup", 1800),
        ("Maison de l'Outil et de la Pensée ouvrière", 2500), ("Musée de Vauluisant", 1200),
        ("Apothicairerie de l'Hôtel-Dieu-le-Comte", 1500),
    ]
    rows = []
    for museum, base in museums:
        for annee in range(2019, 2023):
            for mois in range(1, 13):
                closed = annee == 2020 and mois in (4, 5) or annee == 2020 and mois == 11
                season = 1.4 if mois in (7, 8) else 0.8 if mois in (1, 2, 11) else 1.0
                visitors = 0 if closed else int(base * season * rng.uniform(0.8, 1.2))
                free = int(visitors * rng.uniform(0.1, 0.35))
                share = round(free / visitors, 3) if visitors else 0.0
                rows.append([museum, annee, mois, visitors, free, share,
                             "false" if closed else "true"])
    write_csv("frequentation-musees.csv",
              ["musee", "annee", "mois", "visiteurs", "visiteurs_gratuits", "part_gratuite", "ouvert"],
              rows, encoding="utf-8-sig")


def locations_velos():
    rng = random.Random(104)
    stations = [
        ("Gare", "Troyes"), ("Hôtel de Ville", "Troyes"), ("Vauluisant", "Troyes"),
        ("Université", "Troyes"), ("Mairie", "Sainte-Savine"), ("Le Corbusier", "La Chapelle-Saint-Luc"),
        ("Mairie", "Saint-André-les-Vergers"), ("Gare", "Romilly-sur-Seine"),
    ]
    weights = [5, 4, 3, 4, 2, 2, 2, 1]
    start = datetime.date(2024, 5, 1)
    rows = []
    for _ in range(400):
        station, commune = rng.choices(stations, weights)[0]
        day = start + datetime.timedelta(days=rng.randrange(61))
        hour = rng.choice([7, 8, 8, 9, 12, 13, 17, 17, 18, 18, 19, 21])
        rows.append([station, commune, day.isoformat(), hour, rng.randint(3, 95),
                     "true" if rng.random() < 0.6 else "false"])
    rows.sort(key=lambda row: (row[2], row[3], row[0]))
    write_csv("locations-velos.csv", ["station", "commune", "date", "heure", "duree_min", "abonne"], rows)


def infractions_videoprotection():
    rng = random.Random(105)
    motifs = ["stationnement gênant", "dégradation", "vol à l'étalage", "rixe", "dépôt sauvage",
              "circulation interdite"]
    start = datetime.date(2024, 3, 1)
    rows = []
    for day in range(30):
        jour = (start + datetime.timedelta(days=day)).isoformat()
        for _ in range(rng.randint(6, 12)):
            commune = rng.choices(list(COMMUNES), [6, 1, 2, 1, 2])[0]
            rows.append([rng.choice(motifs), rng.randrange(24), jour, commune, rng.randint(1, 4)])
    write_csv("infractions-videoprotection.csv", ["motif", "heure", "jour", "commune", "nombre"], rows)


# Households per (commune, heating): several groups stay under 11 so an
# aggregate view with min_group_size 11 visibly suppresses them.
HOUSEHOLD_GROUPS = {
    ("Troyes", "gaz"): 38, ("Troyes", "électricité"): 27, ("Troyes", "fioul"): 12, ("Troyes", "bois"): 5,
    ("Sainte-Savine", "gaz"): 14, ("Sainte-Savine", "électricité"): 11, ("Sainte-Savine", "fioul"): 4,
    ("Sainte-Savine", "bois"): 2,
    ("La Chapelle-Saint-Luc", "gaz"): 19, ("La Chapelle-Saint-Luc", "électricité"): 13,
    ("La Chapelle-Saint-Luc", "fioul"): 6,
    ("Saint-André-les-Vergers", "gaz"): 12, ("Saint-André-les-Vergers", "électricité"): 8,
    ("Saint-André-les-Vergers", "bois"): 3,
    ("Romilly-sur-Seine", "gaz"): 17, ("Romilly-sur-Seine", "électricité"): 13,
    ("Romilly-sur-Seine", "fioul"): 9, ("Romilly-sur-Seine", "bois"): 7,
}
INSEE = {"Troyes": "10387", "Sainte-Savine": "10362", "La Chapelle-Saint-Luc": "10081",
         "Saint-André-les-Vergers": "10333", "Romilly-sur-Seine": "10323"}
SURNAMES = ["Exemple", "Fictif", "Modèle", "Essai", "Témoin", "Specimen", "Factice", "Démo"]
FIRST_NAMES = ["Alex", "Camille", "Dominique", "Claude", "Sacha", "Morgan", "Louison", "Charlie"]
STREETS = ["rue de l'Essai", "avenue du Test", "impasse Fictive", "rue du Modèle", "place de l'Exemple"]


def person(rng, number):
    return f"{rng.choice(FIRST_NAMES)} {rng.choice(SURNAMES)}-{number:03d}"


def menages_precarite_energetique():
    rng = random.Random(106)
    rows = []
    number = 0
    for (commune, heating), count in HOUSEHOLD_GROUPS.items():
        for _ in range(count):
            number += 1
            income = rng.randrange(7000, 26000, 50)
            effort = round(rng.uniform(8.0, 24.0), 1)
            iris = INSEE[commune] + f"{rng.randint(1, 6):04d}"
            rows.append([person(rng, number), f"{rng.randint(1, 120)} {rng.choice(STREETS)}",
                         commune, iris, income, effort, heating])
    write_csv("menages-precarite-energetique.csv",
              ["nom", "adresse", "commune", "iris", "revenu_fiscal", "taux_effort", "chauffage"], rows)


def badges_stationnement_residents():
    rng = random.Random(107)
    zones = [("A", "Troyes"), ("B", "Troyes"), ("C", "Troyes"), ("D", "Troyes"), ("S1", "Sainte-Savine")]
    letters = "ABCDEFGHJKLMNPQRSTVWXY"
    rows = []
    for number in range(1, 151):
        zone, commune = rng.choice(zones)
        # The ZZ prefix keeps these plates out of the real numbering series.
        plate = f"ZZ-{rng.randint(100, 999)}-{rng.choice(letters)}{rng.choice(letters)}"
        end = datetime.date(2025, 1, 1) + datetime.timedelta(days=rng.randrange(365))
        rows.append([f"B{number:04d}", person(rng, number), plate, zone, commune, end.isoformat()])
    write_csv("badges-stationnement-residents.csv",
              ["badge", "nom", "immatriculation", "zone", "commune", "date_fin"], rows)


def projets_amenagement():
    rng = random.Random(108)
    kinds = ["voirie", "espace vert", "équipement sportif", "école", "piste cyclable", "éclairage"]
    statuses = ["étude", "concertation", "travaux", "livré"]
    rows = []
    for number in range(1, 41):
        commune = rng.choice(list(COMMUNES))
        kind = rng.choice(kinds)
        start = datetime.date(2023, 1, 1) + datetime.timedelta(days=rng.randrange(900))
        rows.append([f"P{number:03d}", f"Projet {kind} n°{number}", commune, kind,
                     rng.randrange(50_000, 4_000_000, 1000), start.isoformat(), rng.choice(statuses)])
    write_csv("projets-amenagement.csv",
              ["code", "projet", "commune", "type", "budget_eur", "date_debut", "statut"], rows)


def effectifs_services():
    rng = random.Random(109)
    directions = [
        "Action foncière", "Affaires juridiques", "Centre de Supervision Urbain",
        "Circulation - Stationnement", "Commande publique", "Culture - Patrimoine",
        "Développement durable - Climat - Energie", "Eau - Assainissement", "Enfance - Education",
        "Gestion des déchets", "Médiathèque Jacques-Chirac", "Mobilités", "Moyens Généraux",
        "Patrimoine Bâti", "Ressources Humaines", "Sports", "Systèmes d'information", "Urbanisme",
    ]
    rows = []
    for direction in directions:
        staff = rng.randint(4, 120)
        for annee in range(2022, 2025):
            staff = max(2, staff + rng.randint(-4, 5))
            fte = round(staff * rng.uniform(0.86, 0.98), 1)
            rows.append([direction, annee, staff, fte])
    write_csv("effectifs-services.csv", ["direction", "annee", "effectif", "etp"], rows)


def qualite_air_stations():
    rng = random.Random(110)
    stations = [("Troyes Centre", "Troyes"), ("Troyes Est", "Troyes"), ("Sainte-Savine", "Sainte-Savine"),
                ("La Chapelle-Saint-Luc", "La Chapelle-Saint-Luc"), ("Romilly-sur-Seine", "Romilly-sur-Seine")]
    pollutants = {"no2": 22.0, "pm10": 18.0, "pm25": 10.0, "o3": 55.0}
    start = datetime.date(2024, 6, 1)
    rows = []
    for station, commune in stations:
        latitude, longitude = jitter(rng, COMMUNES[commune], 0.008)
        for day in range(15):
            date = (start + datetime.timedelta(days=day)).isoformat()
            for pollutant, mean in pollutants.items():
                rows.append([station, commune, f"{latitude},{longitude}", date, pollutant,
                             round(mean * rng.uniform(0.5, 1.6), 1)])
    write_csv("qualite-air-stations.csv",
              ["station", "commune", "position", "date", "polluant", "concentration_ugm3"], rows)


def main():
    consommations_energie_batiments()
    releves_piezometriques()
    frequentation_musees()
    locations_velos()
    infractions_videoprotection()
    menages_precarite_energetique()
    badges_stationnement_residents()
    projets_amenagement()
    effectifs_services()
    qualite_air_stations()


if __name__ == "__main__":
    main()
