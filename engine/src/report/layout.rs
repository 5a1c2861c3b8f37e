//! Where the DAG's nodes go: a column per depth (the longest path from a step that needs
//! nothing), a row per step within its column, in plan order.

/// A node's column and row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Place {
    pub column: usize,
    pub row: usize,
}

/// The places of steps whose needs are `needs` (by plan index; needs come earlier in
/// plan order, and anything else is ignored).
pub(crate) fn places(needs: &[Vec<u32>]) -> Vec<Place> {
    let mut depth = vec![0usize; needs.len()];
    for (i, of) in needs.iter().enumerate() {
        depth[i] = of
            .iter()
            .map(|&n| n as usize)
            .filter(|&n| n < i)
            .map(|n| depth[n] + 1)
            .max()
            .unwrap_or(0);
    }
    let mut rows = Vec::new();
    depth
        .iter()
        .map(|&column| {
            if rows.len() <= column {
                rows.resize(column + 1, 0);
            }
            let row = rows[column];
            rows[column] += 1;
            Place { column, row }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_depths_and_rows_fill_in_plan_order() {
        // a; b and c need a; d needs b and c; e needs a.
        let places = places(&[vec![], vec![0], vec![0], vec![1, 2], vec![0]]);
        let at: Vec<(usize, usize)> = places.iter().map(|p| (p.column, p.row)).collect();
        assert_eq!(at, [(0, 0), (1, 0), (1, 1), (2, 0), (1, 2)]);
    }
}
