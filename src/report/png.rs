//! The SVG as PNG (resvg: usvg parses, tiny-skia paints), for pasting into tickets and chats.
//! The text is set in the system's fonts (fontdb reads them; on Debian fonts-dejavu-core
//! gives DejaVu Sans, the face the layout is measured for).

use resvg::{tiny_skia, usvg};

use crate::error::Error;

/// Sans-serif faces, best first; else any face the system has.
const SANS: [&str; 5] = [
    "DejaVu Sans",
    "Liberation Sans",
    "Noto Sans",
    "Arial",
    "FreeSans",
];

/// The fonts, loaded once per process.
fn fonts() -> std::sync::Arc<usvg::fontdb::Database> {
    static DB: std::sync::OnceLock<std::sync::Arc<usvg::fontdb::Database>> =
        std::sync::OnceLock::new();
    DB.get_or_init(|| {
        let mut db = usvg::fontdb::Database::new();
        db.load_system_fonts();
        let has = |name: &str| {
            db.faces()
                .any(|f| f.families.iter().any(|(n, _)| n.eq_ignore_ascii_case(name)))
        };
        let family = SANS
            .iter()
            .find(|n| has(n))
            .map(|n| n.to_string())
            .or_else(|| {
                db.faces()
                    .next()
                    .and_then(|f| f.families.first().map(|(n, _)| n.clone()))
            });
        if let Some(f) = family {
            db.set_sans_serif_family(f);
        }
        std::sync::Arc::new(db)
    })
    .clone()
}

/// Whether any font was found (without one, the PNG has no text).
pub fn have_fonts() -> bool {
    !fonts().is_empty()
}

/// Render `svg` (one of ours: width and height in pixels) as PNG bytes.
pub fn render(svg: &str) -> Result<Vec<u8>, Error> {
    let fail = |e: String| Error::Setup(format!("render the PNG: {e}"));
    if !have_fonts() {
        eprintln!(
            "tcpping-diag: warning: no fonts found, the PNG has no text (install fonts-dejavu-core)"
        );
    }
    let opt = usvg::Options {
        fontdb: fonts(),
        ..usvg::Options::default()
    };
    let tree = usvg::Tree::from_str(svg, &opt).map_err(|e| fail(e.to_string()))?;
    let size = tree.size().to_int_size();
    let mut pixmap = tiny_skia::Pixmap::new(size.width(), size.height()).ok_or_else(|| {
        fail(format!(
            "{}×{} px is too large",
            size.width(),
            size.height()
        ))
    })?;
    resvg::render(&tree, tiny_skia::Transform::default(), &mut pixmap.as_mut());
    pixmap.encode_png().map_err(|e| fail(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_svg_becomes_a_png_of_its_size_with_its_colours() {
        let svg = r##"<svg width="40" height="30" xmlns="http://www.w3.org/2000/svg"><rect x="0" y="0" width="40" height="30" fill="#0072B2"/><text x="2" y="20" font-family="sans-serif" font-size="12">a&lt;b</text></svg>"##;
        let png = render(svg).unwrap();
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"));
        let p = tiny_skia::Pixmap::decode_png(&png).unwrap();
        assert_eq!((p.width(), p.height()), (40, 30));
        let c = p.pixel(39, 0).unwrap();
        assert_eq!((c.red(), c.green(), c.blue()), (0x00, 0x72, 0xB2));
    }
}
