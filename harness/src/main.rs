fn main() {
    std::process::exit(brokerbench::cli::main());
}
