fn main() {
    println!("hello from a crate flow checked out and built");
}
