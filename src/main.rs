fn main() {
    println!("passerelle: work in progress");
}
