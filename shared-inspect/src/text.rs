//! Text read from shared memory, made safe to print: nothing in a name may move the cursor,
//! recolour the terminal, reorder what follows it (bidi overrides) or hide itself.

/// Whether `c` is a character of general category Cf ("format": invisible characters that
/// change how neighbouring text is shown or read, the bidi controls among them).
/// The list is Unicode 15.1's.
pub fn is_format(c: char) -> bool {
    matches!(
        c as u32,
        0x00AD
            | 0x0600..=0x0605
            | 0x061C
            | 0x06DD
            | 0x070F
            | 0x0890..=0x0891
            | 0x08E2
            | 0x180E
            | 0x200B..=0x200F
            | 0x202A..=0x202E
            | 0x2060..=0x2064
            | 0x2066..=0x206F
            | 0xFEFF
            | 0xFFF9..=0xFFFB
            | 0x110BD
            | 0x110CD
            | 0x13430..=0x1343F
            | 0x1BCA0..=0x1BCA3
            | 0x1D173..=0x1D17A
            | 0xE0001
            | 0xE0020..=0xE007F
    )
}

/// Whether `c` must not reach a terminal as it is: C0 and C1 controls and DEL, format
/// characters (bidi overrides and isolates, zero-width and invisible ones), and the line
/// and paragraph separators U+2028/U+2029.
pub fn is_unsafe(c: char) -> bool {
    c.is_control() || is_format(c) || c == '\u{2028}' || c == '\u{2029}'
}

/// `s` with every character [`is_unsafe`] replaced by `?`.
pub fn clean(s: &str) -> String {
    s.chars()
        .map(|c| if is_unsafe(c) { '?' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_and_bidi_and_format_characters_become_question_marks() {
        let s = "a\u{1b}[31m\u{9b}b\u{202e}c\u{2066}d\u{2069}e\u{200e}\u{200f}f\u{200b}\u{feff}\
                 g\u{ad}h\u{e0041}i\u{2028}j\u{7f}";
        assert_eq!(clean(s), "a?[31m?b?c?d?e??f??g?h?i?j?");
    }

    #[test]
    fn ordinary_text_is_kept() {
        let s = "hits-é-名前-😀 x_1";
        assert_eq!(clean(s), s);
    }

    #[test]
    fn the_bidi_controls_are_format_characters() {
        for c in (0x202A..=0x202E)
            .chain(0x2066..=0x2069)
            .chain([0x200E, 0x200F])
        {
            assert!(is_format(char::from_u32(c).unwrap()), "{c:#x}");
        }
        assert!(!is_format('a') && !is_format('\u{2027}') && !is_format('\u{2070}'));
    }
}
