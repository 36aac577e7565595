//! How the decision report writes numbers for people: dollars, request counts, qualities, hours
//! and shares, the same way in sentences, text tables, Markdown and HTML.
//!
//! Only presentation: the numbers themselves come from `cost` and `decision`, and JSON output
//! carries them unrounded.

/// Dollars: `$12,345` from a thousand up, `$12.35` from a dollar, else three significant digits
/// (`$0.000150`), so per-request prices stay readable.
pub(crate) fn usd(x: f64) -> String {
    let sign = if x < 0.0 { "-" } else { "" };
    let a = x.abs();
    if a >= 1000.0 {
        format!("{sign}${}", thousands(a.round()))
    } else if a >= 1.0 || a == 0.0 {
        format!("{sign}${a:.2}")
    } else {
        let decimals = (2 - a.log10().floor() as i32).clamp(2, 12) as usize;
        format!("{sign}${a:.decimals$}")
    }
}

/// A count or volume with thousands separators, rounded to a whole number (`12,346`).
pub(crate) fn count(x: f64) -> String {
    if !x.is_finite() {
        return format!("{x}");
    }
    let sign = if x < 0.0 { "-" } else { "" };
    format!("{sign}{}", thousands(x.abs().round()))
}

fn thousands(whole: f64) -> String {
    let digits = format!("{whole:.0}");
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// A metric value: three decimals.
pub(crate) fn quality(x: f64) -> String {
    format!("{x:.3}")
}

/// A metric difference with its sign, using a true minus sign.
pub(crate) fn signed(x: f64) -> String {
    if x < 0.0 {
        format!("\u{2212}{:.3}", -x)
    } else {
        format!("+{x:.3}")
    }
}

/// Hours: one decimal.
pub(crate) fn hours(x: f64) -> String {
    format!("{x:.1} h")
}

/// A duration given in seconds: `42 s`, `12 min`, `2.0 h`.
pub(crate) fn duration(seconds: f64) -> String {
    if seconds < 90.0 {
        format!("{seconds:.0} s")
    } else if seconds < 5400.0 {
        format!("{:.0} min", seconds / 60.0)
    } else {
        hours(seconds / 3600.0)
    }
}

/// A plain number: thousands separators for whole numbers, else up to six significant digits.
pub(crate) fn plain(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        count(x)
    } else {
        num(x)
    }
}

/// A number for a formula: six significant digits, no exponent, no trailing zeros.
pub(crate) fn num(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        return format!("{x}");
    }
    let magnitude = x.abs().log10().floor() as i32;
    let decimals = (5 - magnitude).clamp(0, 12) as usize;
    let s = format!("{x:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    }
}

/// A share as a whole percentage.
pub(crate) fn percent(x: f64) -> String {
    format!("{:.0}%", x * 100.0)
}

/// A p-value: three decimals, or `< 0.001`.
pub(crate) fn p_value(p: f64) -> String {
    if p < 0.001 {
        "< 0.001".to_owned()
    } else {
        format!("{p:.3}")
    }
}

/// A multiplier such as `0.1×` or `10×`.
pub(crate) fn factor(x: f64) -> String {
    let s = format!("{x}");
    format!("{s}\u{d7}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dollars() {
        assert_eq!(usd(15229.86), "$15,230");
        assert_eq!(usd(1232.0), "$1,232");
        assert_eq!(usd(502.0), "$502.00");
        assert_eq!(usd(0.002), "$0.00200");
        assert_eq!(usd(0.000150), "$0.000150");
        assert_eq!(usd(0.5), "$0.500");
        assert_eq!(usd(0.0), "$0.00");
        assert_eq!(usd(-1234567.0), "-$1,234,567");
    }

    #[test]
    fn counts_and_signs() {
        assert_eq!(count(3888.89), "3,889");
        assert_eq!(count(200.0), "200");
        assert_eq!(count(1_000_000.0), "1,000,000");
        assert_eq!(signed(-0.03), "\u{2212}0.030");
        assert_eq!(signed(0.0271), "+0.027");
        assert_eq!(p_value(0.0004), "< 0.001");
        assert_eq!(factor(0.1), "0.1\u{d7}");
        assert_eq!(percent(0.4199), "42%");
        assert_eq!(duration(39.84), "40 s");
        assert_eq!(duration(600.0), "10 min");
        assert_eq!(duration(7236.0), "2.0 h");
        assert_eq!(plain(20000.0), "20,000");
        assert_eq!(plain(0.6), "0.6");
    }

    #[test]
    fn formula_numbers() {
        assert_eq!(num(3888.888888), "3888.89");
        assert_eq!(num(0.000150), "0.00015");
        assert_eq!(num(11.991786447638603), "11.9918");
        assert_eq!(num(-35000.0), "-35000");
        assert_eq!(num(0.0), "0");
    }
}
