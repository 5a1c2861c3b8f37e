//! Host bindings for the plugin contract in `wit/plugin.wit`. The only place
//! the host generates code from WIT.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "flow:plugin/step",
    imports: { "flow:plugin/exec.run": async },
    exports: { default: async },
});

pub use flow::plugin::types;
