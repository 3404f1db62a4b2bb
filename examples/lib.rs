//! Examples of the FunMagic SDK live beside this file; run them with `cargo run -p funmagic-examples --example NAME`.
