//! What the catalogue page needs of every entry on every request, computed
//! once per catalogue snapshot: the lowercased text a search looks in, and
//! the entries in title order. A search then scans prepared strings instead
//! of lowercasing 653 titles and descriptions per request.

use super::definition::DatasetDefinition;

/// The search text and title order of a catalogue snapshot.
#[derive(Debug, Default)]
pub struct SearchIndex {
    /// Per entry (in the catalogue's order): id, title, description and
    /// keywords, lowercased, one per line.
    haystacks: Vec<String>,
    /// Entry positions by lowercased title (ties in the catalogue's order).
    by_title: Vec<usize>,
}

impl SearchIndex {
    pub fn new<'a>(definitions: impl Iterator<Item = &'a DatasetDefinition>) -> SearchIndex {
        let mut titles = Vec::new();
        let haystacks = definitions
            .map(|definition| {
                let title = definition.title.to_lowercase();
                // Words never hold a line end (they are split on whitespace):
                // a word found in the text is found in one field.
                let mut text = format!(
                    "{}\n{title}\n{}",
                    definition.id,
                    definition.description.to_lowercase()
                );
                for keyword in &definition.keywords {
                    text.push('\n');
                    text.push_str(&keyword.to_lowercase());
                }
                titles.push(title);
                text
            })
            .collect();
        let mut by_title: Vec<usize> = (0..titles.len()).collect();
        by_title.sort_by(|a, b| titles[*a].cmp(&titles[*b]));
        SearchIndex {
            haystacks,
            by_title,
        }
    }

    /// Entry positions in title order.
    pub fn by_title(&self) -> &[usize] {
        &self.by_title
    }

    /// True when every word (lowercased, without whitespace) is in the id,
    /// title, description or a keyword of entry `position`: what
    /// `http::datasets::list::matches_words` answers.
    pub fn matches(&self, position: usize, words: &[String]) -> bool {
        let text = &self.haystacks[position];
        words.iter().all(|word| text.contains(word.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::datasets::list::{matches_words, search_words};

    fn definition(
        id: &str,
        title: &str,
        description: &str,
        keywords: &[&str],
    ) -> DatasetDefinition {
        serde_json::from_value(serde_json::json!({
            "id": id,
            "title": title,
            "description": description,
            "keywords": keywords,
            "publisher": "Troyes Champagne Métropole",
            "licence": "etalab-2.0",
            "access": "open",
            "source": {},
        }))
        .unwrap()
    }

    /// The prepared text finds what the API's search finds, no more
    /// (a word across two fields included); titles order the entries.
    #[test]
    fn finds_what_the_api_finds() {
        let definitions = [
            definition(
                "velos",
                "Vélos en libre service",
                "Locations\nde vélos",
                &["Mobilité"],
            ),
            definition(
                "air",
                "Qualité de l'AIR",
                "Stations de mesure",
                &["pollution", "NO2"],
            ),
            definition("b-arbres", "arbres", "", &[]),
        ];
        let index = SearchIndex::new(definitions.iter());
        for query in [
            "vélo",
            "VÉLOS libre",
            "air",
            "no2",
            "mobilité",
            "service\nlocations",
            "servicelocations",
            "velos",
            "arbres",
            "mesure pollution",
            "x",
            "",
        ] {
            let words = search_words(query);
            for (position, definition) in definitions.iter().enumerate() {
                assert_eq!(
                    index.matches(position, &words),
                    matches_words(definition, &words),
                    "{query:?} on {}",
                    definition.id
                );
            }
        }
        assert_eq!(index.by_title(), &[2, 1, 0]);
    }
}
