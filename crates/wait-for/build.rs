//! Links the `wait-for` binary in the order of its `symbol-order.txt` (the
//! functions it runs first, placed together at the front of `.text`); see
//! the `podkit-link-order` crate for how and why.

fn main() {
    podkit_link_order::apply("wait-for");
}
